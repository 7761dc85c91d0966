"""The Weaviate store, through the official weaviate-client (v4): one collection of passages with a self-provided
vector under a cosine HNSW index and field-tokenized properties for the metadata filters; the embedding model and
dimension recorded in the collection's description when it is created, the generation in a `Kb_stores` collection.
Imported only with `kb.store: weaviate`, so that nothing else needs the client."""

from __future__ import annotations

import json
import secrets
import uuid
from urllib.parse import urlsplit

import grpc
import numpy as np
import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Timeout
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError
from weaviate.util import generate_uuid5

from parallel_r1.kb.endpoints import Endpoint
from parallel_r1.kb.store import Filters, Hit, KBError, Passage, UpsertResult, VectorStore

VECTOR = "default"  # the name of the collection's one vector
REGISTRY = "Kb_stores"  # one object per passage collection: its generation
CHUNK = 500  # objects per search or batch request (Weaviate returns at most 10,000 objects per query by default)
_FIELDS = ("text", "title", "source", "subject", "cards", "metadata_json")


def collection_name(table: str) -> str:
    """kb.table as a Weaviate collection name, which starts with an upper-case letter: kb_passages -> Kb_passages."""
    return table[:1].upper() + table[1:] if table[:1].isalpha() else f"Kb{table}"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:299] + "…"


def _reason(err: BaseException, root: bool = False) -> str:
    """The error in one line; `root`: the deepest cause's, which names the failure ("[Errno 111] Connection
    refused") where the client's own message does not."""
    while root and (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    return _one_line(str(err)) or type(err).__name__


def _check_grpc(host: str, port: int, secure: bool, timeout_s: int) -> bool:
    """Whether the gRPC port accepts a connection within the timeout: the client itself would retry an unreachable
    port for about a minute before failing."""
    target = f"{host}:{port}"
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def _filter_property(name: str, data_type: DataType = DataType.TEXT) -> Property:
    return Property(name=name, data_type=data_type, tokenization=Tokenization.FIELD, index_searchable=False)


def _stored_property(name: str) -> Property:
    return Property(name=name, data_type=DataType.TEXT, index_filterable=False, index_searchable=False)


def _properties(p: Passage, model: str) -> dict:
    props = {"digest": p.digest, "text": p.text, "title": p.title, "source": p.source, "cards": list(p.cards),
             "metadata_json": json.dumps(p.metadata, sort_keys=True), "model": model}
    if p.subject is not None:
        props["subject"] = p.subject
    return props


def _metadata(props: dict) -> tuple:
    """What a re-ingest of the same text may change, normalised (an empty value may come back absent)."""
    return (props.get("title") or "", props.get("source"), props.get("subject"), tuple(props.get("cards") or ()),
            props.get("metadata_json") or "{}")


def _passage(props: dict) -> Passage:
    return Passage(text=props["text"], source=props["source"], title=props.get("title") or "",
                   subject=props.get("subject"), cards=tuple(props.get("cards") or ()),
                   metadata=json.loads(props.get("metadata_json") or "{}"))


def _where(filters: Filters | None):
    if filters is None:
        return None
    parts = [Filter.by_property(name).equal(value) for name, value in (("subject", filters.subject),
                                                                      ("source", filters.source)) if value is not None]
    if filters.card is not None:
        parts.append(Filter.by_property("cards").contains_any([filters.card]))
    return Filter.all_of(parts) if parts else None


class WeaviateStore(VectorStore):
    def __init__(self, endpoint: Endpoint, *, table: str, model: str, dimension: int, grpc_port: int = 50051,
                 connect_timeout_s: int = 5, ef_search: int = 64):
        self.table, self.model, self.dimension = collection_name(table), model, dimension
        self._where = endpoint.describe()
        url = urlsplit(endpoint.url)
        secure = url.scheme == "https"
        try:
            port = url.port or (443 if secure else 80)
        except ValueError:
            port = None
        if url.scheme not in ("http", "https") or not url.hostname or port is None:
            raise KBError(f"{self._where} is not an http(s) address: give it as http://host:8080")
        try:
            self._client = weaviate.connect_to_custom(
                http_host=url.hostname, http_port=port, http_secure=secure,
                grpc_host=url.hostname, grpc_port=grpc_port, grpc_secure=secure,
                skip_init_checks=True,  # the client's own checks would also ask PyPI for its latest version
                additional_config=AdditionalConfig(timeout=Timeout(init=connect_timeout_s)))
        except WeaviateBaseError as e:
            raise KBError(f"cannot reach {self._where}: {_reason(e, root=True)}; check the address") from None
        if not _check_grpc(url.hostname, grpc_port, secure, connect_timeout_s):
            self._client.close()
            raise KBError(f"cannot reach the gRPC port {grpc_port} of {self._where} within {connect_timeout_s} s: set "
                          f"kb.weaviate_grpc_port to its gRPC port (50051 unless the server sets GRPC_PORT)")
        self._passages = self._client.collections.use(self.table)
        self._registry = self._client.collections.use(REGISTRY)
        self._registry_id = generate_uuid5(self.table)
        try:
            self.store_id = self._open(ef_search)
        except WeaviateBaseError as e:
            self._client.close()
            raise KBError(f"{self._where} failed while opening collection {self.table}: {_reason(e)}") from None
        except BaseException:
            self._client.close()
            raise

    def _create(self, name: str, **config) -> None:
        """Create the collection unless it exists; another process creating it at the same time is fine."""
        collections = self._client.collections
        if collections.exists(name):
            return
        try:
            collections.create(name, **config)
        except UnexpectedStatusCodeError:
            if not collections.exists(name):
                raise

    def _open(self, ef_search: int) -> str:
        """Create both collections where missing and check the passages' model; returns the store id."""
        record = {"model": self.model, "dimension": self.dimension, "store_id": uuid.uuid4().hex}
        self._create(REGISTRY, properties=[_filter_property("collection"), Property(name="generation",
                                                                                    data_type=DataType.INT)],
                     vector_config=Configure.Vectors.self_provided())
        self._create(
            self.table, description=json.dumps(record),
            properties=[_filter_property("digest"), _stored_property("text"), _stored_property("title"),
                        _filter_property("source"), _filter_property("subject"),
                        _filter_property("cards", DataType.TEXT_ARRAY), _stored_property("metadata_json"),
                        _stored_property("model")],
            vector_config=Configure.Vectors.self_provided(name=VECTOR, vector_index_config=Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances.COSINE, ef=ef_search)))
        description = self._passages.config.get(simple=True).description or ""
        try:
            found = json.loads(description)
            model, dimension, store_id = found["model"], found["dimension"], found["store_id"]
        except (ValueError, TypeError, KeyError):
            raise KBError(f"collection {self.table} in {self._where} was not made by parallel-r1 (its description "
                          f"records no embedding model): set kb.table to another name") from None
        if (model, dimension) != (self.model, self.dimension):
            raise KBError(f"collection {self.table} in {self._where} holds vectors of {model} ({dimension} dims), not "
                          f"of {self.model} ({self.dimension} dims): set kb.table to another table for this model")
        return store_id

    def _fetch(self, digests: list[str], *, properties: tuple[str, ...] = (), vectors: bool = False) -> dict:
        """The stored objects of these digests, by digest."""
        found = {}
        for start in range(0, len(digests), CHUNK):
            by_id = {generate_uuid5(d): d for d in digests[start:start + CHUNK]}
            result = self._passages.query.fetch_objects(
                filters=Filter.by_id().contains_any(list(by_id)), limit=len(by_id),
                return_properties=list(properties), include_vector=[VECTOR] if vectors else False)
            found.update({by_id[str(o.uuid)]: o for o in result.objects})
        return found

    def _write(self, collection, objects: list[DataObject]) -> None:
        """Insert or replace (by UUID) objects, in batches; any object refused is a KBError."""
        for start in range(0, len(objects), CHUNK):
            batch = objects[start:start + CHUNK]
            result = collection.data.insert_many(batch)
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise KBError(f"{self._where} refused {len(result.errors)} of {len(batch)} objects of "
                              f"{self.table}: {_one_line(first.message)}")

    def missing(self, digests: list[str]) -> set[str]:
        return set(digests) - set(self._fetch(list(dict.fromkeys(digests))))

    def upsert(self, passages: list[Passage], vectors: dict[str, np.ndarray]) -> UpsertResult:
        """Weaviate has no transactions: every vector is checked before anything is written, and a write that fails
        midway leaves the passages written so far, which the next ingest of the same files keeps (by digest)."""
        unique = list({p.digest: p for p in passages}.values())
        rows = {}
        for digest, vec in vectors.items():
            rows[digest] = np.asarray(vec, dtype=np.float32)
            if rows[digest].shape != (self.dimension,):
                raise KBError(f"an embedding of {rows[digest].shape} does not fit collection {self.table} "
                              f"({self.dimension} dims)")
        stored = self._fetch([p.digest for p in unique], properties=_FIELDS[1:])
        new = [p for p in unique if p.digest not in stored and p.digest in rows]
        changed = [p for p in unique if p.digest in stored
                   and _metadata(stored[p.digest].properties) != _metadata(_properties(p, self.model))]
        old_vectors = self._fetch([p.digest for p in changed], vectors=True)
        objects = [DataObject(properties=_properties(p, self.model), uuid=generate_uuid5(p.digest),
                              vector={VECTOR: rows[p.digest].tolist()}) for p in new]
        objects += [DataObject(properties=_properties(p, self.model), uuid=generate_uuid5(p.digest),
                               vector={VECTOR: old_vectors[p.digest].vector[VECTOR]}) for p in changed]
        if objects:
            self._write(self._passages, objects)
            # a new random generation (52 bits: Weaviate carries numbers as doubles), so no read-modify-write race
            generation = {"collection": self.table, "generation": secrets.randbits(52)}
            self._write(self._registry, [DataObject(properties=generation, uuid=self._registry_id)])
        return UpsertResult(added=len(new), unchanged=len(unique) - len(new))

    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[Hit]:
        result = self._passages.query.near_vector(
            near_vector=np.asarray(vector, dtype=np.float32).tolist(), target_vector=VECTOR, limit=k,
            filters=_where(filters), return_metadata=MetadataQuery(distance=True), return_properties=list(_FIELDS))
        return [Hit(_passage(o.properties), 1.0 - o.metadata.distance) for o in result.objects]

    def count(self) -> int:
        return self._passages.aggregate.over_all(total_count=True).total_count

    def generation(self) -> int:
        found = self._registry.query.fetch_object_by_id(self._registry_id, return_properties=["generation"])
        return 0 if found is None else int(found.properties["generation"])

    def close(self) -> None:
        self._client.close()
