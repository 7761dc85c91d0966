"""A local stand-in for a Weaviate server, for the tests of the Weaviate store: no Weaviate binary can be installed
here (none is on PyPI or Debian, and the client's embedded mode downloads one from GitHub).

It speaks the part of Weaviate's protocol that weaviate-client 4.x uses for `parallel_r1.kb.weaviate_store`, with
the client's own generated protobuf modules and servicer base: REST `GET /v1/meta`, `GET /v1/schema/{name}` and
`POST /v1/schema`; gRPC `Search` (filters, `near_vector`), `BatchObjects` and `Aggregate` (the object count). It keeps
real state and behaviour: objects per collection keyed by UUID (a batch replaces an object with the same UUID), one
vector length per named vector (another length is a per-object batch error, as in Weaviate), exact cosine distance
(`1 - cosine similarity`, what Weaviate's HNSW index approximates), results nearest first or by UUID without a
vector. Filters support AND / OR, `equal` and `contains_any` on `_id` and on properties; a filter on a property that
is not field-tokenized and filterable is refused, where Weaviate would match word by word. Anything else it does not
implement is an UNIMPLEMENTED or 422 answer, never a silent success.
"""

from __future__ import annotations

import re
import threading
import time
import uuid as uuid_lib
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from tests.fakes.threaded_server import ThreadedServer

VERSION = "1.32.0"  # the server version reported by /v1/meta: the client picks gRPC for search, batch and aggregate
CLASS_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
# what Weaviate fills into a vector index config that does not say otherwise (the client reads them all back)
HNSW_DEFAULTS = {"cleanupIntervalSeconds": 300, "distance": "cosine", "dynamicEfMin": 100, "dynamicEfMax": 500,
                 "dynamicEfFactor": 8, "ef": -1, "efConstruction": 128, "flatSearchCutoff": 40000,
                 "maxConnections": 32, "skip": False, "vectorCacheMaxObjects": 1_000_000_000_000}
Op = base_pb2.Filters


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Collection:
    config: dict  # the class as created through POST /v1/schema
    objects: dict[str, tuple[dict, dict[str, np.ndarray]]] = field(default_factory=dict)  # uuid -> props, vectors
    times: dict[str, tuple[int, int]] = field(default_factory=dict)  # uuid -> created, last updated (ms)

    def prop(self, name: str) -> dict | None:
        return next((p for p in self.config.get("properties", []) if p["name"] == name), None)

    def vector_length(self, name: str) -> int | None:
        return next((len(v[name]) for _, v in self.objects.values() if name in v), None)


class FakeWeaviate:
    """`with FakeWeaviate() as server:` serves REST on `server.url` and gRPC on `server.grpc_port` (127.0.0.1).
    `calls` counts the requests per endpoint; `collections` is the state."""

    def __init__(self):
        self.collections: dict[str, Collection] = {}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rest = _Rest(self)
        self._grpc: grpc.Server | None = None
        self.grpc_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._rest.port}"

    def __enter__(self) -> FakeWeaviate:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._rest.start()
        return self

    def __exit__(self, *exc) -> None:
        self._rest.stop()
        self._grpc.stop(grace=None)

    # --- REST -------------------------------------------------------------------------------------------------
    def create_class(self, config: dict) -> tuple[int, dict]:
        name = str(config.get("class", ""))
        name = name[:1].upper() + name[1:]
        with self._lock:
            if not CLASS_NAME.match(name):
                return 422, _rest_error(f"'{name}' is not a valid class name")
            if name in self.collections:
                return 422, _rest_error(f'class name "{name}" already exists')
            vectors = {target: {**vec, "vectorIndexType": vec.get("vectorIndexType", "hnsw"),
                                "vectorIndexConfig": {**HNSW_DEFAULTS, **vec.get("vectorIndexConfig", {})}}
                       for target, vec in config.get("vectorConfig", {}).items()}
            if any(v["vectorIndexType"] != "hnsw" or v["vectorIndexConfig"]["distance"] != "cosine"
                   for v in vectors.values()):
                return 422, _rest_error("fake Weaviate: only HNSW indexes with the cosine distance")
            properties = [_with_defaults(p) for p in config.get("properties", [])]
            self.collections[name] = Collection({**config, "class": name, "properties": properties,
                                                 "vectorConfig": vectors})
            return 200, self.collections[name].config

    # --- gRPC -------------------------------------------------------------------------------------------------
    def _collection(self, name: str) -> Collection:
        if name not in self.collections:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'class "{name}" not found in schema')
        return self.collections[name]

    def batch(self, request: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        errors = []
        with self._lock:
            for index, obj in enumerate(request.objects):
                try:
                    self._put(obj)
                except _Abort as e:
                    errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=str(e)))
        return batch_pb2.BatchObjectsReply(errors=errors)

    def _put(self, obj: batch_pb2.BatchObject) -> None:
        coll = self._collection(obj.collection)
        raw = obj.properties
        props = dict(json_format.MessageToDict(raw.non_ref_properties)) if raw.HasField("non_ref_properties") else {}
        props.update({a.prop_name: list(a.values) for a in raw.text_array_properties})
        props.update({a.prop_name: list(a.values) for a in raw.int_array_properties})
        props.update(dict.fromkeys(raw.empty_list_props, []))
        for name, value in list(props.items()):
            schema = coll.prop(name)
            if schema is None:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"no such prop with name '{name}' found in class "
                                                               f"'{coll.config['class']}' in the schema")
            if value is None:
                del props[name]
            elif schema["dataType"] == ["int"]:
                props[name] = int(value)
        vectors = {}
        for vec in obj.vectors:
            if vec.name not in coll.config.get("vectorConfig", {}):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"target vector '{vec.name}' not found")
            vectors[vec.name] = np.frombuffer(vec.vector_bytes, dtype="<f4").copy()
            known = coll.vector_length(vec.name)
            if known is not None and known != len(vectors[vec.name]):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"new node has a vector with length "
                                                               f"{len(vectors[vec.name])}. Existing nodes have "
                                                               f"vectors with length {known}")
        if len(obj.vector_bytes):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "fake Weaviate: only named vectors")
        uid, now = str(uuid_lib.UUID(obj.uuid)), time.time_ns() // 1_000_000
        coll.objects[uid] = (props, vectors)
        coll.times[uid] = (coll.times.get(uid, (now, now))[0], now)

    def search(self, request: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        with self._lock:
            coll = self._collection(request.collection)
            found = [(uid, props, vecs) for uid, (props, vecs) in sorted(coll.objects.items())
                     if not request.HasField("filters") or _matches(request.filters, coll, uid, props)]
            distances: dict[str, float] = {}
            if request.HasField("near_vector"):
                name, query = _near_vector(request.near_vector)
                distances = {uid: _cosine_distance(query, vecs[name]) for uid, _, vecs in found if name in vecs}
                found = sorted((f for f in found if f[0] in distances), key=lambda f: distances[f[0]])
            elif any(f.name != "near_vector" and f.name.startswith("near_") for f, _ in request.ListFields()):
                raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "fake Weaviate: only near_vector searches")
            found = found[request.offset:request.offset + (request.limit or 10)]
            return search_get_pb2.SearchReply(results=[_result(request, coll, uid, props, vecs, distances.get(uid))
                                                       for uid, props, vecs in found])

    def aggregate(self, request: aggregate_pb2.AggregateRequest) -> aggregate_pb2.AggregateReply:
        if request.aggregations or request.HasField("group_by") or not request.objects_count:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "fake Weaviate: only the objects count")
        with self._lock:
            coll = self._collection(request.collection)
            count = sum(1 for uid, (props, _) in coll.objects.items()
                        if not request.HasField("filters") or _matches(request.filters, coll, uid, props))
        return aggregate_pb2.AggregateReply(single_result=aggregate_pb2.AggregateReply.Single(objects_count=count))


def _with_defaults(prop: dict) -> dict:
    """A property as Weaviate stores it: text is word-tokenized, filterable and searchable unless told otherwise."""
    text = prop["dataType"][0] in ("text", "text[]")
    return {"indexFilterable": True, "indexSearchable": text, "indexRangeFilters": False,
            **({"tokenization": "word"} if text else {}), **prop}


def _rest_error(message: str) -> dict:
    return {"error": [{"message": message}]}


class _Rest(ThreadedServer):
    def __init__(self, fake: FakeWeaviate):
        self.fake = fake

    def _app(self) -> FastAPI:
        app, fake = FastAPI(), self.fake

        @app.get("/v1/meta")
        def meta():
            fake.calls["GET /v1/meta"] += 1
            return {"hostname": "http://[::]:8080", "modules": {}, "version": VERSION,
                    "grpcMaxMessageSize": 104858000}

        @app.get("/v1/schema/{name}")
        def get_class(name: str):
            fake.calls["GET /v1/schema/{name}"] += 1
            coll = fake.collections.get(name[:1].upper() + name[1:])
            return coll.config if coll else JSONResponse(status_code=404, content=None)

        @app.post("/v1/schema")
        async def create_class(request: Request):
            fake.calls["POST /v1/schema"] += 1
            status, body = fake.create_class(await request.json())
            return JSONResponse(status_code=status, content=body)

        return app


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, fake: FakeWeaviate):
        self.fake = fake

    def _serve(self, method: str, handler, request, context):
        self.fake.calls[method] += 1
        try:
            return handler(request)
        except _Abort as e:
            context.abort(e.code, str(e))

    def Search(self, request, context):  # noqa: N802 - the servicer's method names
        return self._serve("Search", self.fake.search, request, context)

    def BatchObjects(self, request, context):  # noqa: N802
        return self._serve("BatchObjects", self.fake.batch, request, context)

    def Aggregate(self, request, context):  # noqa: N802
        return self._serve("Aggregate", self.fake.aggregate, request, context)


def _matches(f: base_pb2.Filters, coll: Collection, uid: str, props: dict) -> bool:
    if f.operator == Op.OPERATOR_AND:
        return all(_matches(sub, coll, uid, props) for sub in f.filters)
    if f.operator == Op.OPERATOR_OR:
        return any(_matches(sub, coll, uid, props) for sub in f.filters)
    name = f.target.property
    if name == "_id":
        values = [uid]
    else:
        schema = coll.prop(name)
        if schema is None or schema.get("tokenization") != "field" or schema.get("indexFilterable") is False:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"fake Weaviate: '{name}' is not a field-tokenized, "
                                                           f"filterable property (Weaviate would match its words)")
        value = props.get(name)
        values = value if isinstance(value, list) else [] if value is None else [value]
    if f.operator == Op.OPERATOR_EQUAL and f.HasField("value_text"):
        return f.value_text in values
    if f.operator == Op.OPERATOR_CONTAINS_ANY and f.HasField("value_text_array"):
        return bool(set(f.value_text_array.values) & set(values))
    raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"fake Weaviate: filter {Op.Operator.Name(f.operator)} on '{name}'")


def _near_vector(near: base_search_pb2.NearVector) -> tuple[str, np.ndarray]:
    targets = list(near.targets.target_vectors) if near.HasField("targets") else list(near.target_vectors)
    if len(targets) != 1 or len(near.vectors) > 1:
        raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "fake Weaviate: near_vector with one target vector only")
    raw = near.vectors[0].vector_bytes if near.vectors else near.vector_bytes
    return targets[0], np.frombuffer(raw, dtype="<f4")


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) != len(b):
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"vector lengths don't match: {len(a)} vs {len(b)}")
    return float(1 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _value(value) -> properties_pb2.Value:
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return properties_pb2.Value(list_value=properties_pb2.ListValue(
                text_values=properties_pb2.TextValues(values=value)))
        raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "fake Weaviate: lists of text only")
    if isinstance(value, bool):
        return properties_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return properties_pb2.Value(int_value=value)
    if isinstance(value, float):
        return properties_pb2.Value(number_value=value)
    return properties_pb2.Value(text_value=str(value))


def _result(request: search_get_pb2.SearchRequest, coll: Collection, uid: str, props: dict,
            vecs: dict[str, np.ndarray], distance: float | None) -> search_get_pb2.SearchResult:
    wanted = request.properties
    names = props if wanted.return_all_nonref_properties else [n for n in wanted.non_ref_properties if n in props]
    metadata = search_get_pb2.MetadataResult(id=uid, id_as_bytes=uuid_lib.UUID(uid).bytes)
    created, updated = coll.times[uid]
    if request.metadata.creation_time_unix:
        metadata.creation_time_unix, metadata.creation_time_unix_present = created, True
    if request.metadata.last_update_time_unix:
        metadata.last_update_time_unix, metadata.last_update_time_unix_present = updated, True
    if distance is not None and request.metadata.distance:
        metadata.distance, metadata.distance_present = distance, True
    for name in request.metadata.vectors:
        if name in vecs:
            metadata.vectors.append(base_pb2.Vectors(name=name, vector_bytes=vecs[name].astype("<f4").tobytes(),
                                                     type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32))
    return search_get_pb2.SearchResult(metadata=metadata, properties=search_get_pb2.PropertiesResult(
        target_collection=coll.config["class"],
        non_ref_props=properties_pb2.Properties(fields={n: _value(props[n]) for n in names})))
