"""The embedded model's tokenizer: byte-level BPE trained on the dialogue corpus, and its chat template.

The template marks assistant content with `{% generation %}` so TRL's `assistant_only_loss=True` and
`return_assistant_tokens_mask=True` see exactly the assistant replies (each with its end-of-turn token), except
those with `"weight": 0` (the OpenAI fine-tuning format's per-message weight): they are context, not targets.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS = "<|begin|>"  # starts every rendered conversation, so packed documents stay apart
EOS = "<|end|>"  # ends every message; generation stops here
PAD = "<|pad|>"
ROLES = ("system", "user", "assistant")
ROLE_TOKENS = tuple(f"<|{r}|>" for r in ROLES)
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unsupported role ' + message['role'] + ': use system, user or assistant') }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' and message['weight'] is defined and message['weight'] == 0 %}"
    "<|assistant|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}"
    "<|assistant|>\n{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (no unknown tokens) with the chat special tokens and template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Keeps character offsets exact: the assistant mask is computed from them.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS), model_max_length=max_length, chat_template=CHAT_TEMPLATE,
    )
