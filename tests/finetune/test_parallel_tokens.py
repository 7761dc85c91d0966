"""The Parallel-R1 tags become single tokens that survive decoding, and the model's embeddings grow to match."""

from transformers import AutoModelForCausalLM, AutoTokenizer

from parallel_r1.data.parallel_format import format_block
from parallel_r1.finetune.parallel_tokens import PARALLEL_TAGS, add_parallel_tokens, parallel_token_ids


def test_tags_are_single_tokens_kept_by_decoding_and_the_template(tiny_base_model):
    tok = AutoTokenizer.from_pretrained(tiny_base_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    before = len(tok)
    assert len(parallel_token_ids(tok)) < len(PARALLEL_TAGS)

    added = add_parallel_tokens(tok, model)

    assert set(added) | set(parallel_token_ids(tok)) == set(PARALLEL_TAGS)
    assert len(tok) == before + len(added)
    assert model.get_input_embeddings().num_embeddings == len(tok)
    assert model.get_output_embeddings().weight.shape[0] == len(tok)
    reply = format_block(["try a number line", "count on your fingers"], "use the number line")
    ids = tok.apply_chat_template([{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": reply}],
                                  tokenize=True, return_dict=True)["input_ids"]
    assert all(i in ids for i in parallel_token_ids(tok).values())
    assert reply in tok.decode(ids, skip_special_tokens=True)
    assert add_parallel_tokens(tok, model) == []
    assert model.get_input_embeddings().num_embeddings == len(tok)
