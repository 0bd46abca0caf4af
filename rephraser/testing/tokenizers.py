"""Tiny tokenizers built offline, for tests and benchmarks (no hub).

    bpe = build_bpe_tokenizer(texts, "dir/bpe")               # byte-level BPE (fast), adds BOS, no UNK
    gpt2 = build_gpt2_style_tokenizer(texts, "dir/gpt2")      # GPT-2's convention: unk = bos = eos, no BOS added
    slow, fast = build_llama_spm_tokenizers(texts, "dir/spm")  # Llama-2-style sentencepiece: slow + fast
    big = build_wordlevel_tokenizer(70_000)                    # vocabulary past uint16

The sentencepiece model is trained with Llama-2's settings (BPE, byte fallback, identity normalisation,
whitespace kept, digits split, <unk>=0 <s>=1 </s>=2) so that the slow tokenizer (transformers'
SentencePieceBackend, pure Python around sentencepiece) and the fast one converted from it agree.
"""

from __future__ import annotations

import io
from pathlib import Path


def build_bpe_tokenizer(texts, out_dir: str | Path, vocab_size: int = 2000):
    """Byte-level BPE like GPT-2/Llama-3, with a post-processor that prepends <s>; saved and reloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    wrapped.save_pretrained(out_dir)
    return AutoTokenizer.from_pretrained(out_dir)


def build_gpt2_style_tokenizer(texts, out_dir: str | Path, vocab_size: int = 2000):
    """Byte-level BPE with GPT-2's (and Pythia's, SmolLM2 base's, StarCoder's) convention: one special token,
    "<|endoftext|>", that is at once unk, bos and eos; no BOS is added and there is no pad token. An ordinary
    string then maps to the EOS id under convert_tokens_to_ids (it is unknown as one token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    end = "<|endoftext|>"
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end)
    wrapped.save_pretrained(out_dir)
    return AutoTokenizer.from_pretrained(out_dir)


def build_llama_spm_tokenizers(texts, out_dir: str | Path, vocab_size: int = 1000):
    """(slow, fast) Llama-2-style tokenizers over one locally trained sentencepiece model."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        minloglevel=2,
    )
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    # special_tokens_pattern="bos": the slow tokenizer prepends <s> as Llama's does (not saved by save_pretrained).
    slow = SentencePieceBackend(
        vocab_file=str(out_dir / "tokenizer.model"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        special_tokens_pattern="bos",
    )
    slow.save_pretrained(out_dir)
    fast = LlamaTokenizer.from_pretrained(out_dir, add_bos_token=True)
    return slow, fast


def build_wordlevel_tokenizer(vocab_size: int):
    """Words w0..w{n-1} plus specials: encodes "w65540" to an id above uint16's range."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(vocab_size - 3)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
