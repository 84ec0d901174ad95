"""Prompt construction (the paper's template), completion-only labels, left truncation, packing."""
import numpy as np
import pytest

from gloss.data import Catalog, split_leave_one_out
from gloss.data.dataset import GlossData
from gloss.data.prompt_datamodule import IGNORE, PromptDataModule, PromptEncoder
from gloss.data.prompts import PAPER_TEMPLATE, PromptTemplate
from gloss.models.scratch_lm import title_tokenizer

TITLES = [f"{brand} {kind} {n} Ounce" for n, (brand, kind) in enumerate(
    [(b, k) for b in ("Essie", "OPI", "Maybelline", "Revlon") for k in ("Nail Polish", "Mascara", "Shampoo", "Lip Balm")])]
COMPACT = PromptTemplate(instruction="", history_header="", item_format="{title}", item_separator="{eos}", next_header="{eos}")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return title_tokenizer(TITLES, 300, tmp_path_factory.mktemp("cache"))


def tiny_data() -> GlossData:
    rng = np.random.default_rng(0)
    seqs = [rng.choice(len(TITLES), size=int(rng.integers(3, 9)), replace=False).astype(np.int64) for _ in range(40)]
    split = split_leave_one_out([f"u{i}" for i in range(40)], seqs, val_fraction=0.1, seed=42)
    return GlossData("tiny", Catalog([f"i{i}" for i in range(len(TITLES))], TITLES), split, (5, 14))


def test_paper_template_is_glosss_prompt():
    expected = (
        "Below is a customer's purchase history on Amazon, listed in chronological order (earliest to latest). \n"
        "Each item is represented by the following format: Title: <item title> \n"
        "Based on this history, predict **only one** item the customer is most likely to purchase next in the same format.\n\n"
        "### Purchase history:\n"
        "Title: A\nTitle: B\n\n### Next item:\n"
    )
    assert PAPER_TEMPLATE.prompt(["A", "B"]) == expected
    assert PAPER_TEMPLATE.completion("C") == "Title: C"
    assert PAPER_TEMPLATE.title_of(" Title: C ") == "C"


def test_loss_only_on_completion_plus_eos(tokenizer):
    enc = PromptEncoder(tokenizer, PAPER_TEMPLATE, TITLES, max_seq_length=1024)
    ids, labels = enc.example([0, 1], 2)
    n_prompt = len(tokenizer(PAPER_TEMPLATE.prompt([TITLES[0], TITLES[1]]))["input_ids"])
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    completion = labels[n_prompt:]
    assert completion == ids[n_prompt:] and completion[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(completion, skip_special_tokens=True) == f"Title: {TITLES[2]}"


def test_left_truncation_keeps_most_recent_items(tokenizer):
    history = list(range(12))
    full = PromptEncoder(tokenizer, PAPER_TEMPLATE, TITLES, max_seq_length=4096).example(history, 13)[0]
    enc = PromptEncoder(tokenizer, PAPER_TEMPLATE, TITLES, max_seq_length=len(full) - 40)
    ids, labels = enc.example(history, 13)
    assert len(ids) == len(full) - 40 and ids == full[40:]  # the head (instruction) goes first
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert TITLES[11] in text and TITLES[10] in text and "Below is a customer" not in text
    assert tokenizer.decode([t for t in labels if t != IGNORE], skip_special_tokens=True) == f"Title: {TITLES[13]}"


def test_max_history_items_keeps_the_last_ones():
    tpl = PromptTemplate(max_history_items=2)
    assert tpl.prompt(["A", "B", "C"]) == PromptTemplate().prompt(["B", "C"])


def test_packed_sequence_trains_every_prefix(tokenizer):
    """Packing is only an efficiency: its labels are exactly those of the per-prefix examples."""
    enc = PromptEncoder(tokenizer, COMPACT, TITLES, max_seq_length=1024)
    seq = [3, 7, 1, 9]
    (ids, labels), = enc.packed(seq)
    for cut in range(1, len(seq)):
        ex_ids, ex_labels = enc.example(seq[:cut], seq[cut])
        assert ids[: len(ex_ids)] == ex_ids  # prompt(h) + completion(t) == prefix of the packed sequence
        done = [i for i, t in enumerate(ex_labels) if t != IGNORE]
        assert [labels[i] for i in done] == [ex_labels[i] for i in done]
    n_first = 1 + len(enc.item_ids[seq[0]])  # BOS + first item: context only
    assert labels[:n_first] == [IGNORE] * n_first and IGNORE not in labels[n_first:]


def test_packed_chunks_respect_max_seq_length(tokenizer):
    enc = PromptEncoder(tokenizer, COMPACT, TITLES, max_seq_length=24)
    seq = list(range(10))
    chunks = enc.packed(seq)
    assert len(chunks) > 1 and all(len(ids) <= 24 for ids, _ in chunks)
    n_targets = sum(1 for _, lab in chunks for i, t in enumerate(lab) if t == tokenizer.eos_token_id)
    assert n_targets == len(seq) - 1  # every item but the first is a target exactly once


def test_item_tokens_replace_the_eos_that_closes_each_item(tokenizer):
    """With item tokens, an item's identity enters only after its whole title; as a label it is still EOS."""
    offset = len(tokenizer)
    enc = PromptEncoder(tokenizer, COMPACT, TITLES, max_seq_length=1024, item_token_offset=offset)
    plain = PromptEncoder(tokenizer, COMPACT, TITLES, max_seq_length=1024)
    seq = [3, 7, 1, 9]
    (ids, labels), = enc.packed(seq)
    (plain_ids, plain_labels), = plain.packed(seq)
    assert labels == plain_labels
    marks = [(pos, t - offset) for pos, t in enumerate(ids) if t >= offset]
    assert [item for _, item in marks] == seq
    assert all(plain_ids[pos] == tokenizer.eos_token_id for pos, _ in marks)
    assert [t for t in ids if t < offset] == [t for t in plain_ids if t != tokenizer.eos_token_id]
    assert enc.prompt_ids(seq[:3])[-1] == offset + seq[2]  # generation starts right after the last item's token
    with pytest.raises(ValueError, match="EOS-separated"):
        PromptEncoder(tokenizer, PAPER_TEMPLATE, TITLES, max_seq_length=1024, item_token_offset=offset)


def test_datamodule_batches(tokenizer):
    data = tiny_data()
    enc = PromptEncoder(tokenizer, COMPACT, TITLES, max_seq_length=1024)
    dm = PromptDataModule(data, enc, batch_size=4, eval_batch_size=16, packed=True, catalog_examples=True,
                          padding_free=False, seed=42)
    dm.setup("fit")
    with_target = sum(len(s) >= 2 for s in data.split.train_sequences())  # one packed sequence per user with a target
    assert len(dm.train) == with_target + len(TITLES)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    assert len(dm.val) == len(data.split.val_users)
    with pytest.raises(ValueError):
        PromptDataModule(data, PromptEncoder(tokenizer, PAPER_TEMPLATE, TITLES, max_seq_length=1024), batch_size=4,
                         eval_batch_size=16, packed=True, catalog_examples=False, padding_free=False, seed=42)
