"""The generative recommender: 4-bit + LoRA loading, training, beam search, the val callback, resume, presets.

Everything runs on tiny random Llama models (CPU, no network)."""
import functools
import json
import time
import types
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gloss.data import Catalog, split_leave_one_out
from gloss.data.dataset import GlossData
from gloss.data.padding import left_pad_prompts, right_pad_examples
from gloss.data.prompt_datamodule import PromptDataModule, PromptEncoder
from gloss.data.prompts import PromptTemplate
from gloss.errors import GlossError
from gloss.models.base import build_model
from gloss.models.beam_search import beam_search
from gloss.models.generator import GenerativeRecommender, GeneratorModule
from gloss.models.pretrained_lm import pretrained_lm
from gloss.models.scratch_lm import load_generator, scratch_llama, transition_svd
from gloss.training import Fitter
from tests.models.factory import make_model, make_retriever

CONF = str(Path(__file__).resolve().parents[2] / "conf")
TITLES = [f"{b} {k} {n} Ounce" for n, (b, k) in enumerate(
    [(b, k) for b in ("Essie", "OPI", "Maybelline", "Revlon") for k in ("Nail Polish", "Mascara", "Shampoo", "Lip Balm")])]
COMPACT = dict(instruction="", history_header="", item_format="{title}", item_separator="{eos}", next_header="{eos}")
# scratch_llama's settings for a tiny, text-only Llama
TINY = dict(vocab_size=300, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=None, max_position_embeddings=256,
            item_embeddings=None, item_scale=1.0, item_init_std=None, item_start_epoch=0, token_init=None, pretrained=None)
# short beam searches in small batches, without the context contrast
GENERATION = dict(backend="prefill_once", num_beams=5, num_return_sequences=5, max_new_tokens=10, length_penalty=1.0,
                  batch_size=8, contrast=0.0)


def generator_module(model, tokenizer, **generation) -> GeneratorModule:
    """A GeneratorModule that generates with GENERATION, `generation` over it (its optimizer settings are unused)."""
    return GeneratorModule(model, tokenizer, lr=3e-3, weight_decay=0.01, warmup_steps=2,
                           generation={**GENERATION, **generation})


def tiny_llama(data: GlossData, cache_dir: str | Path, **settings):
    """(model, tokenizer): scratch_llama with TINY, `settings` over it."""
    return scratch_llama(data, str(cache_dir), **{**TINY, **settings})


def tiny_data(n_users: int = 40) -> GlossData:
    rng = np.random.default_rng(0)
    seqs = [rng.choice(len(TITLES), size=int(rng.integers(3, 9)), replace=False).astype(np.int64) for _ in range(n_users)]
    split = split_leave_one_out([f"u{i}" for i in range(n_users)], seqs, val_fraction=0.1, seed=42)
    return GlossData("tiny", Catalog([f"i{i}" for i in range(len(TITLES))], TITLES), split, (5, 14))


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama + tokenizer saved like a hub checkpoint (stands in for Llama-3 weights)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tok = tiny_llama(tiny_data(), folder / "cache")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_4bit_nf4_lora_only_adapters_train(tiny_llama_dir):
    import bitsandbytes as bnb

    lora = dict(r=4, lora_alpha=4, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model, tok = pretrained_lm(str(tiny_llama_dir), load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype="float32", bnb_4bit_use_double_quant=True, torch_dtype="float32",
                               attn_implementation="sdpa",
                               lora=lora, gradient_checkpointing=False)
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7  # every targeted projection of both layers is 4-bit
    assert all(m.weight.quant_state.quant_type == "nf4" for m in quantized)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    batch = {k: v for k, v in tok(["Essie Mascara 1 Ounce"], return_tensors="pt").items() if k != "token_type_ids"}
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_B" in n)


def test_tiny_model_overfits_tiny_set(tmp_path):
    torch.manual_seed(0)
    data = tiny_data()
    model, tok = tiny_llama(data, tmp_path)
    enc = PromptEncoder(tok, PromptTemplate(**COMPACT), TITLES, max_seq_length=256)
    dm = PromptDataModule(data, enc, batch_size=64, eval_batch_size=16, packed=True, catalog_examples=True,
                          padding_free=False, seed=42)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model(**batch).loss.item()
    for _ in range(60):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_beam_search_returns_five_titles_and_matches_greedy(tmp_path):
    data = tiny_data()
    model, tok = tiny_llama(data, tmp_path)
    model.eval()
    enc = PromptEncoder(tok, PromptTemplate(**COMPACT), TITLES, max_seq_length=256)
    prompts = [enc.prompt_ids(h) for h in data.split.histories(data.split.examples("test"))[:6]]
    module = generator_module(model, tok, max_new_tokens=8, batch_size=4)
    out = module.generate(prompts)
    assert len(out) == 6 and all(len(row) == 5 for row in out)
    hf = generator_module(model, tok, max_new_tokens=8, batch_size=4, backend="hf").generate(prompts)
    assert len(hf) == 6 and all(len(row) == 5 for row in hf)
    ids, mask = left_pad_prompts(prompts, tok.pad_token_id)
    seqs, scores = beam_search(model, ids, mask, num_beams=5, max_new_tokens=8, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    assert seqs.shape[:2] == (6, 5) and (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    assert all(len({tuple(s.tolist()) for s in user}) == 5 for user in seqs)  # 5 distinct beams
    # one beam == greedy decoding by transformers' generate (same prompts, same left padding)
    one, _ = beam_search(model, ids, mask, num_beams=1, max_new_tokens=8, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    greedy = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=8, min_new_tokens=8,
                            eos_token_id=None, pad_token_id=tok.pad_token_id)[:, ids.shape[1]:]
    for row in range(6):  # compare up to (and including) the first EOS
        g = greedy[row].tolist()
        n = g.index(tok.eos_token_id) + 1 if tok.eos_token_id in g else len(g)
        assert one[row, 0, :n].tolist() == g[:n]



def test_contrastive_beam_search_matches_a_manual_greedy_loop(tmp_path):
    """contrast=a scores tokens by (1+a) log p(.|history) - a log p(.|BOS) (renormalised); 1 beam = greedy on that."""
    data = tiny_data()
    model, tok = tiny_llama(data, tmp_path, tie_word_embeddings=False)  # untied: no EOS-echo at init
    model.eval()
    enc = PromptEncoder(tok, PromptTemplate(**COMPACT), TITLES, max_seq_length=256)
    prompts = [enc.prompt_ids(h) for h in data.split.histories(data.split.examples("test"))[:4]]
    ids, mask = left_pad_prompts(prompts, tok.pad_token_id)
    eos, bos, a = tok.eos_token_id, tok.bos_token_id, 1.0
    one, _ = beam_search(model, ids, mask, num_beams=1, max_new_tokens=6, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                         contrast=a, null_prompt=[bos])
    plain_out, _ = beam_search(model, ids, mask, num_beams=1, max_new_tokens=6, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    assert not torch.equal(one, plain_out)  # the contrast changes what is generated
    with torch.no_grad():
        for row, prompt in enumerate(prompts):
            ctx, null, out = list(prompt), [bos], []
            for _ in range(6):
                lc = model(input_ids=torch.tensor([ctx])).logits[0, -1].log_softmax(-1)
                ln = model(input_ids=torch.tensor([null])).logits[0, -1].log_softmax(-1)
                t = int(((1 + a) * lc - a * ln).argmax())
                out.append(t)
                ctx, null = ctx + [t], null + [t]
                if t == eos:
                    break
            assert one[row, 0, : len(out)].tolist() == out

def test_item_embeddings_tell_apart_items_with_the_same_title(tmp_path):
    """Items 0 and 1 share a title but have different successors: a text-only prompt cannot tell them apart,
    the item tokens can. Also: the item token is EOS + the item's vector, and a saved model reloads only on its catalog."""
    titles = ["Alpha Rose Serum", "Alpha Rose Serum", "Beta Cream", "Gamma Soap"]
    split = split_leave_one_out(["u0", "u1"], [np.array([0, 2, 3]), np.array([1, 3, 2])], val_fraction=0.0, seed=42)
    data = GlossData("dup", Catalog(["a", "b", "c", "d"], titles), split, (1, 3))
    torch.manual_seed(0)
    model, tok = tiny_llama(data, tmp_path / "cache", item_embeddings="random")
    offset = model.config.vocab_size
    enc = PromptEncoder(tok, PromptTemplate(**COMPACT), titles, max_seq_length=64, item_token_offset=offset)
    batch = right_pad_examples(enc.packed([0, 2]) + enc.packed([1, 3]), tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    module = generator_module(model.eval(), tok, max_new_tokens=8, num_beams=2, num_return_sequences=1)
    assert [row[0].strip() for row in module.generate([enc.prompt_ids([0]), enc.prompt_ids([1])])] == ["Beta Cream", "Gamma Soap"]
    with torch.no_grad():
        prompt = torch.tensor([enc.prompt_ids([0])])
        as_eos = prompt.masked_fill(prompt >= offset, tok.eos_token_id)
        assert not torch.allclose(model(input_ids=prompt).logits, model(input_ids=as_eos).logits)
        model.item_embed.weight[0].zero_()
        assert torch.allclose(model(input_ids=prompt).logits, model(input_ids=as_eos).logits)
    model.save_pretrained(tmp_path / "gen")
    tok.save_pretrained(tmp_path / "gen")
    reloaded, _ = load_generator(tmp_path / "gen", num_items=4)
    assert torch.equal(reloaded.item_embed.weight, model.item_embed.weight) and reloaded.items_on
    with pytest.raises(GlossError, match="catalog has 5"):
        load_generator(tmp_path / "gen", num_items=5)


def test_svd_item_vectors_summarise_training_successors_only():
    """Items with the same training successors get the same vector; held-out targets add nothing."""
    titles = [f"Item {c}" for c in "ABCDEF"]
    split = split_leave_one_out(["u0", "u1"], [np.array([0, 2, 3, 5]), np.array([1, 2, 3, 4])], val_fraction=0.0, seed=42)
    data = GlossData("svd", Catalog(list("abcdef"), titles), split, (2, 4))
    vectors = transition_svd(data, dim=8, seed=0)
    assert vectors.shape == (6, 8) and torch.allclose(vectors[0], vectors[1], atol=1e-5)
    assert vectors[0].abs().sum() > 0 and not torch.allclose(vectors[0], vectors[2], atol=1e-3)
    assert (vectors[3:] == 0).all()  # 3 is followed only by test targets (4, 5), which never appear in training


def test_item_curriculum_reads_item_tokens_as_eos_until_its_epoch_and_saves_that_state(tmp_path):
    data = tiny_data()
    model, tok = tiny_llama(data, tmp_path / "cache", item_embeddings="svd", item_start_epoch=2)
    ids = torch.tensor([[tok.bos_token_id, 5, 6, model.config.vocab_size + 3, 7]])
    as_eos = ids.masked_fill(ids >= model.config.vocab_size, tok.eos_token_id)
    module = generator_module(model, tok)
    with torch.no_grad():
        for epoch, items_on in ((0, False), (1, False), (2, True)):
            module._trainer = types.SimpleNamespace(current_epoch=epoch)  # the hook reads only the epoch
            module.on_train_epoch_start()
            assert torch.allclose(model(input_ids=ids).logits, model(input_ids=as_eos).logits) != items_on
    model.start_epoch(1)
    model.save_pretrained(tmp_path / "gen")
    tok.save_pretrained(tmp_path / "gen")
    assert not load_generator(tmp_path / "gen", num_items=len(data.catalog.titles))[0].items_on


def test_item_vectors_start_at_item_init_std_whatever_item_scale(tmp_path):
    """item_scale is a learning-rate multiplier: the effective vectors (item_scale * weight) start the same, at item_init_std."""
    data = tiny_data()
    starts = []
    for scale in (1.0, 0.1):
        model, _ = tiny_llama(data, tmp_path / "cache", item_embeddings="random", item_scale=scale, item_init_std=0.2)
        starts.append(scale * model.item_embed.weight.detach())
    assert torch.allclose(starts[0], starts[1], atol=1e-6)
    assert abs(float(starts[0].std()) - 0.2) < 0.01


def test_token_init_starts_token_embeddings_from_the_encoders_view_of_each_token(tmp_path, monkeypatch):
    """token_init: tokens the encoder embeds alike start alike (PCA keeps its geometry), in the input and the tied
    output layer, at the random init's scale; special and blank tokens keep exactly the random init."""
    from gloss.retrieval.dense import DenseRetriever

    def planted(self, texts, prefix, what):  # the "encoder": tokens containing a vowel vs not, two directions + noise
        rng = np.random.default_rng(0)
        return np.stack([[1.0, 0.0] if any(c in "aeiou" for c in t.lower()) else [0.0, 1.0] for t in texts]) \
            + 0.01 * rng.normal(size=(len(texts), 2))

    monkeypatch.setattr(DenseRetriever, "embed", planted)
    data = tiny_data()
    plain_model, tok = tiny_llama(data, tmp_path / "cache")
    model, _ = tiny_llama(data, tmp_path / "cache", token_init="stub-encoder")
    emb, plain = model.model.embed_tokens.weight.detach(), plain_model.model.embed_tokens.weight.detach()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied: output layer too
    texts = [tok.decode([i]).strip() for i in range(len(tok))]
    blank = [i for i, t in enumerate(texts) if not t or "\ufffd" in t or i in tok.all_special_ids]
    assert set(tok.all_special_ids) <= set(blank)
    assert torch.equal(emb[blank], plain[blank])
    vowel = [i for i, t in enumerate(texts) if i not in blank and any(c in "aeiou" for c in t.lower())]
    other = [i for i, t in enumerate(texts) if i not in blank and i not in vowel]
    assert len(vowel) > 10 and len(other) > 10
    centre_v, centre_o = emb[vowel].mean(0), emb[other].mean(0)
    spread = max(float((emb[vowel] - centre_v).norm(dim=1).max()), float((emb[other] - centre_o).norm(dim=1).max()))
    assert float((centre_v - centre_o).norm()) > 10 * spread
    assert abs(float(emb[vowel + other].std()) - 0.02) < 0.002


def recommender(tmp_path: Path, item_embeddings: str | None = None, **kw) -> GenerativeRecommender:
    """The default generator (conf/model/gloss_scratch.yaml) on a tiny random Llama and BM25: the compact prompt
    without a history cap, short plain beam searches (GENERATION), ranked in beam order (no rerank, no collaborative
    model, no ablation); `kw` replaces any of its arguments."""
    backbone = functools.partial(scratch_llama, cache_dir=str(tmp_path / "cache"), **{**TINY, "item_embeddings": item_embeddings})
    args = dict(backbone=backbone, retriever=make_retriever("bm25"), template={**COMPACT, "max_history_items": None},
                max_seq_length=256, max_item_tokens=None, lr=3e-3, warmup_steps=2, generation=GENERATION, rerank=None,
                collaborative=None, ablation=None)
    return make_model("gloss_scratch", **{**args, **kw})


def run_cfg(max_epochs: int, ckpt_path: str | None = None):
    """The default generator's run config (its recipe: PromptDataModule, Trainer, callbacks), trimmed for tiny data."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[
            "model=gloss_scratch", f"trainer.max_epochs={max_epochs}", "trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false", "datamodule.batch_size=16", "datamodule.catalog_examples=false",
            "callbacks.ranking_eval.max_users=null"])
    cfg.ckpt_path = ckpt_path
    return cfg


def train(cfg, recommender: GenerativeRecommender, data: GlossData, run_dir: Path) -> L.Trainer:
    """Train as a run does (gloss.training.Fitter), with the recipe of the run config's model (build_model keeps a
    model node's recipe on the model; `recommender()` builds the model itself)."""
    recommender.recipe = OmegaConf.to_container(cfg.model.recipe, resolve=True)
    return Fitter(cfg, run_dir).fit(recommender, data)


@pytest.mark.parametrize("item_embeddings", [None, "svd"])
def test_fit_logs_val_metrics_saves_generator_and_resumes(tmp_path, item_embeddings):
    data = tiny_data()
    run_dir = tmp_path / "run"
    rec = recommender(tmp_path, item_embeddings)
    trainer = train(run_cfg(1), rec, data, run_dir)
    assert {"val/recall@5", "val/ndcg@5", "val/recall@10", "val/ndcg@10", "val/loss"} <= set(trainer.callback_metrics)
    ranking = rec.recommend(data.split.histories(data.split.examples("test")), k=10)
    assert ranking.items.shape == (len(data.split.user_ids), 10) and (ranking.items[:, 0] >= 0).all()
    saved = run_dir / "generator"
    assert (saved / "gloss_generation.json").is_file() and (saved / "tokenizer.json").is_file()
    assert json.loads((saved / "gloss_generation.json").read_text())["generation"]["num_beams"] == 5
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert first > 0
    resumed = recommender(tmp_path, item_embeddings)
    train(run_cfg(2, "last"), resumed, data, run_dir)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2 * first
    # reloaded from the run folder alone: the saved settings are read back (they win over this config's) and it
    # ranks exactly like the trained model
    reloaded = recommender(tmp_path / "other", item_embeddings, generation={**GENERATION, "max_new_tokens": 3}, fusion="rrf")
    reloaded.build_for(data, seed=0, run_dir=run_dir)
    assert reloaded.module.generation == resumed.module.generation and reloaded.fusion == "top1_per_query"
    histories = data.split.histories(data.split.examples("test"))
    assert (reloaded.recommend(histories, k=10).items == resumed.recommend(histories, k=10).items).all()


def test_precomputed_generations_use_the_same_retrieval(tmp_path):
    data = tiny_data()
    ex = data.split.examples("test")
    ids = data.catalog.item_ids
    entries = [{"reviewer_id": data.split.user_ids[u], "asin": ids[data.split.sequences[u][c]],
                "seen_asins": [ids[i] for i in data.split.sequences[u][:c]],
                "generated_sequences": [f"Title: {TITLES[data.split.sequences[u][c]]}"] + ["Title: x"] * 4} for u, c in ex]
    path = tmp_path / "gen.json"
    path.write_text(json.dumps(entries))
    model = make_model("precomputed", path=str(path), retriever=make_retriever("bm25"))
    model.fit(data)
    ranking = model.recommend(data.split.histories(ex), k=5)
    assert (ranking.items[:, 0] == data.split.targets(ex)).all()  # the exact title retrieves the target first
    with pytest.raises(GlossError, match="no generations"):
        model.recommend(data.split.histories(data.split.examples("val")), k=5)
    path.write_text(json.dumps([{**entries[0], "reviewer_id": "nobody"}]))
    with pytest.raises(GlossError, match="unknown user"):
        model.fit(data)
    path.write_text(json.dumps([{**entries[0], "asin": "not-the-target"}]))
    with pytest.raises(GlossError, match="do not match"):
        model.fit(data)


@pytest.mark.parametrize("preset", ["gloss_scratch", "llama3_2_1b", "llama3_2_3b", "llama3_1_8b"])
def test_presets_instantiate(preset, tmp_path):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={preset}", f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path}"])
    model = build_model(cfg.model)
    assert isinstance(model, GenerativeRecommender) and model.generation["num_beams"] == 5
    assert model.fusion == "top1_per_query"
    assert (model.rerank is None) == preset.startswith("llama")  # the paper's rows rank by beam order, no rerank


def test_llama_preset_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=llama3_2_1b", f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path}"])
    model = build_model(cfg.model)
    t0 = time.perf_counter()
    with pytest.raises(GlossError, match="model.backbone.pretrained="):
        model.build_for(tiny_data(), seed=0)
    assert time.perf_counter() - t0 < 10


def test_llama_preset_trains_saves_its_adapter_and_reloads_from_the_run_folder(tiny_llama_dir, tmp_path):
    """The paper preset as composed by Hydra (4-bit NF4 + LoRA on all projections, its recipe), on a tiny local Llama:
    one epoch, the LoRA adapter saved to run_dir/generator (Hydra's list of target modules included), and a reload
    from the run folder that ranks exactly like the trained model."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[
            "model=llama3_2_1b", f"model.backbone.pretrained={tiny_llama_dir}", "model.backbone.torch_dtype=float32",
            "model.backbone.bnb_4bit_compute_dtype=float32", "model.generation.max_new_tokens=8", "retriever=bm25",
            "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
            "datamodule.batch_size=8", "trainer.accumulate_grad_batches=1", "callbacks.ranking_eval.max_users=null",
            f"paths.cache_dir={tmp_path / 'cache'}"])
    data, run_dir = tiny_data(), tmp_path / "run"
    model = build_model(cfg.model)
    Fitter(cfg, run_dir).fit(model, data)
    saved = run_dir / "generator"
    adapter = json.loads((saved / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == sorted(cfg.model.backbone.lora.target_modules)
    histories = data.split.histories(data.split.examples("test"))
    expected = model.recommend(histories, k=10).items
    reloaded = build_model(cfg.model)
    reloaded.build_for(data, seed=0, run_dir=run_dir)
    assert (reloaded.recommend(histories, k=10).items == expected).all()
