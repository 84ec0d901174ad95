"""Sharded ranking on a Dask cluster (`eval.engine` of run.py / eval.py, `engine` of predict.py; docs/distributed.md).

Off by default (workers 1, no address): the model ranks in this process, as always. Otherwise the users are cut into
shards of whole scoring batches (a `ScoringRecommender` ranks `batch_size` users at a time), ranked on the workers of
a `distributed.LocalCluster` (worker processes, one thread each) or of a running scheduler (`address`), and gathered
back in the users' order. Each batch is the same one the one-process run ranks, so the Ranking (and the metrics
computed once from it in this process) are the same bytes.

The fitted model is pickled once, broadcast to every worker and unpickled there once per worker (kept until another
model comes). A trained model's Lightning Trainer stays behind: ranking needs only the weights (on CPU, in eval mode).
"""
from __future__ import annotations

import atexit
import hashlib
import importlib
import io
import logging
import math
import pickle
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from gloss.errors import GlossError
from gloss.models.base import Ranking, Recommender
from gloss.progress import Progress

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("gloss")


@dataclass(frozen=True)
class Engine:
    key: str  # the config key that set it (eval.engine, or predict.py's engine): named in errors
    workers: int  # local worker processes (ignored with an address)
    address: str | None  # a running Dask scheduler
    shards_per_worker: int


def engine_settings(node: Any, key: str) -> Engine | None:
    """The engine a config node asks for, or None for one process (also when the node is absent: a run folder saved
    before the engine existed). Bad values: GlossError naming `key`.<field>."""
    if node is None:
        return None
    workers, address = node.get("workers", 1), node.get("address")
    shards = node.get("shards_per_worker", 1)
    for name, value in (("workers", workers), ("shards_per_worker", shards)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GlossError(f"{key}.{name}={value!r}: must be an integer >= 1")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise GlossError(f"{key}.address={address!r}: a Dask scheduler address (e.g. tcp://host:8786) or null")
    if address is None and workers == 1:
        return None
    return Engine(key, workers, address, shards)


def shard_bounds(n_users: int, unit: int, n_shards: int) -> list[tuple[int, int]]:
    """[start, stop) of at most `n_shards` consecutive shards covering n_users, each starting at a multiple of `unit`
    (the model's scoring batch), so that every batch a shard ranks is one the one-process run ranks."""
    n_batches = math.ceil(n_users / unit)
    size = math.ceil(n_batches / max(1, n_shards)) * unit
    return [(start, min(start + size, n_users)) for start in range(0, n_users, size)]


def batch_unit(model: Recommender) -> int:
    """Users per scoring batch of a ScoringRecommender that knows its catalog size (from eval.rank_memory_mb, or its
    batch_size without a budget): shards are cut at multiples of it. 1 for other models (a sparse scorer's rows do
    not depend on their batch; other models batch in their own way)."""
    from gloss.models.base import ScoringRecommender, rows_within_budget

    n_items = getattr(model, "n_items", None) if isinstance(model, ScoringRecommender) else None
    return rows_within_budget(n_items, model.batch_size) if n_items else 1


# --- the model on the wire: pickled without its Trainer -------------------------------------------------------------
class _ModelPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        """A Lightning Trainer (loggers, data loaders, callbacks) is not sent: the model ranks without it."""
        cls = type(obj)
        return "trainer" if cls.__name__ == "Trainer" and cls.__module__.startswith(("lightning", "pytorch_lightning")) else None


class _ModelUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> None:
        if pid != "trainer":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return None


def model_payload(model: Recommender, key: str) -> bytes:
    buffer = io.BytesIO()
    try:
        _ModelPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(model)
    except Exception as e:
        raise GlossError(f"{key}: model {model.name} cannot be sent to Dask workers ({type(e).__name__}: {e}); "
                         "rank it in one process (workers=1, address=null)") from e
    return buffer.getvalue()


_WORKER_MODEL: dict[str, Recommender] = {}  # on a worker: the last model received, by payload digest


def pack(histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Histories as one flat array and their lengths: two buffers on the wire (a list of 10^4 small arrays costs
    Dask a frame each, several times the ranking itself)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    return (np.concatenate(histories) if len(histories) else np.zeros(0, dtype=np.int64)), lengths


def unpack(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def rank_shard(payload: bytes, digest: str, packed: tuple[np.ndarray, np.ndarray], k: int,
               rank_memory_mb: float | None) -> Ranking:
    """Runs on a worker: the shard's ranking (`packed` histories) by the broadcast model (unpickled once per worker
    and model), under the client's ranking budget (eval.rank_memory_mb: the same scoring batches)."""
    from gloss.models import base

    histories = unpack(*packed)

    if "torch" in sys.modules:  # one core per Dask thread: an inherited OMP_NUM_THREADS=2 in each of 2 workers on
        sys.modules["torch"].set_num_threads(1)  # 2 cores made ranking 2.3x slower (docs/scale.md)
    base.configure_ranking(rank_memory_mb)
    model = _WORKER_MODEL.get(digest)
    if model is None:
        _WORKER_MODEL.clear()
        model = _WORKER_MODEL[digest] = _ModelUnpickler(io.BytesIO(payload)).load()
    return model.recommend(histories, k)


def warm(modules: list[str]) -> None:
    """Runs on a worker while the client still loads data and fits: the model's imports (seconds each, torch's most)."""
    for module in modules:
        importlib.import_module(module)


# --- clients: one per engine for the life of the process ------------------------------------------------------------
_CLIENTS: dict[Engine, "Client"] = {}
_BROADCAST: dict[Engine, tuple[Any, str, Any]] = {}  # engine -> (model, digest, future of its payload)
_STARTING: dict[Engine, threading.Thread] = {}
_WARMING: list[Any] = []  # futures of warm(): kept so that Dask does not cancel them
_LOCK = threading.Lock()


def prestart(engine: Engine | None, modules: Sequence[str] = ()) -> None:
    """Start the engine's cluster in a background thread, its workers importing `modules`, so that ranking waits for
    neither (run.py / eval.py call it before loading data, predict.py before loading the run). A failure to start is
    raised where the client is first needed (client_for)."""
    if engine is None or engine in _CLIENTS or engine in _STARTING:
        return

    def start() -> None:
        try:
            client = connect(engine)
        except Exception:
            return
        for worker in client.nthreads():
            _WARMING.append(client.submit(warm, ["gloss.models.base", *modules], workers=[worker], pure=False))

    _STARTING[engine] = thread = threading.Thread(target=start, name="gloss-engine-start", daemon=True)
    thread.start()


def prestart_for(cfg: Any) -> None:
    """prestart for a run's config: its eval.engine (checked here, before data loads) and its model's module."""
    target = cfg.model.get("_target_") if cfg.get("model") is not None else None
    modules = [target.rpartition(".")[0]] if isinstance(target, str) and target.startswith("gloss.") else []
    prestart(engine_settings(cfg.eval.get("engine"), "eval.engine"), modules)


def client_for(engine: Engine) -> "Client":
    """A Dask client of the engine's cluster (started by prestart, or now), closed when the process exits."""
    thread = _STARTING.pop(engine, None)
    if thread is not None:
        thread.join()
    return connect(engine)


def connect(engine: Engine) -> "Client":
    with _LOCK:
        if engine not in _CLIENTS:
            _CLIENTS[engine] = new_client(engine)
        return _CLIENTS[engine]


def new_client(engine: Engine) -> "Client":
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # not its INFO lines in run.log
    t0 = time.perf_counter()
    if engine.address is not None:
        try:
            client = Client(engine.address, timeout=30)
        except OSError as e:
            raise GlossError(f"{engine.key}.address={engine.address}: no Dask scheduler answers there ({e})") from e
    else:
        cluster = LocalCluster(n_workers=engine.workers, threads_per_worker=1, processes=True,
                               silence_logs=logging.WARNING,  # no dashboard; its HTTP server on a free port
                               scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
    atexit.register(close_clients)  # again, after distributed's own exit hooks: ours must run first (LIFO)
    n_workers = len(client.nthreads())
    if not n_workers:
        client.wait_for_workers(1, timeout=60)
    log.info("ranking engine: Dask %s with %d workers (started in %.1fs)",
             engine.address or "LocalCluster", len(client.nthreads()), time.perf_counter() - t0)
    return client


@atexit.register
def close_clients() -> None:
    # the run is over: the scheduler's warnings that workers leave with computed tasks and data are expected now
    for name in [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for thread in list(_STARTING.values()):
        thread.join()
    _STARTING.clear()
    _WARMING.clear()
    _BROADCAST.clear()
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def broadcast(client: "Client", engine: Engine, model: Recommender) -> tuple[str, Any]:
    """The model's payload on every worker, sent once per model (digest, future)."""
    cached = _BROADCAST.get(engine)
    if cached is not None and cached[0] is model:
        return cached[1], cached[2]
    payload = model_payload(model, engine.key)
    digest = hashlib.sha256(payload).hexdigest()
    t0 = time.perf_counter()
    future = client.scatter(payload, broadcast=True, hash=False)
    log.info("ranking engine: model %s (%.1f MB) sent to the workers in %.1fs", model.name, len(payload) / 2**20,
             time.perf_counter() - t0)
    _BROADCAST[engine] = (model, digest, future)
    return digest, future


# --- ranking -------------------------------------------------------------------------------------------------------
def rank_users(model: Recommender, histories: Sequence[np.ndarray], k: int, engine: Engine | None) -> Ranking:
    """The model's top-k for every history, in order: in this process, or sharded over the engine's workers."""
    if engine is None or not len(histories):
        return model.recommend(histories, k)
    from gloss.eval.splits import ranking_device

    device = ranking_device(model)
    if device != "cpu":
        raise GlossError(f"{engine.key}: the model is on {device}; sharded ranking runs on the workers' CPUs (rank on "
                         "the GPU in one process: workers=1, address=null)")
    from distributed import as_completed

    from gloss.models import base

    client = client_for(engine)
    digest, payload = broadcast(client, engine, model)
    threads = max(1, sum(client.nthreads().values()))  # 1 per worker process on a LocalCluster
    bounds = shard_bounds(len(histories), batch_unit(model), threads * engine.shards_per_worker)
    futures = {client.submit(rank_shard, payload, digest, pack(histories[a:b]), k, base.RANK_MEMORY_MB,
                             pure=False): i for i, (a, b) in enumerate(bounds)}
    parts: list[Ranking | None] = [None] * len(bounds)
    with Progress(len(histories), f"rank ({len(bounds)} shards on {threads} worker threads)") as progress:
        for future in as_completed(futures):
            i = futures[future]
            parts[i] = future.result()
            progress.update(bounds[i][1] - bounds[i][0])
    return Ranking(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))
