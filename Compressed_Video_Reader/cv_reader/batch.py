"""The process pool of the batch commands: one video per task, and a worker that dies fails only its own item.

`concurrent.futures.ProcessPoolExecutor` marks the whole pool broken when one worker process dies (out of memory,
a signal, a decoder crash) and fails every pending future with `BrokenProcessPool`. Here at most `num_workers` items
are in flight, so after a break only those are suspects: the pool is rebuilt for the items not yet started, and
each suspect is run again alone in a one-worker pool, which tells the item that kills its worker from the
bystanders that died with it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

from .decode import available_cpus, set_decoder_threads

logger = logging.getLogger(__name__)

WORKER_DIED = "worker process died while processing this item (killed by a signal or out of memory)"


def run_guarded(work: Callable[[dict], dict], job: dict) -> dict:
    """Run one job and never raise: a failure is reported with its reason, a finished item of a resumed run as
    skipped. The pool entry point (module level, so it pickles). The result does not carry the job: the caller
    attaches its own (`_with_job`), so a job's dataset row is not pickled back from the worker and held twice."""
    try:
        result = {"status": "ok", **work(job)}
    except Exception as err:  # one item never takes the batch down: its failure is reported with the reason
        return {"status": "failed", "error": repr(err), "traceback": traceback.format_exc()}
    if result.get("skipped"):
        result["status"] = "skipped"
    return result


def _with_job(result: dict, job: dict) -> dict:
    result["job"] = job
    return result


def died(job: dict) -> dict:
    """The result of an item whose worker process died."""
    return {"status": "failed", "error": WORKER_DIED, "traceback": "", "job": job}


def decoder_threads_per_worker(num_workers: int) -> int:
    """Each worker's share of the cores this process may use (at least one thread per decoder)."""
    return max(1, available_cpus() // max(num_workers, 1))


PARENT_POLL_S = 1.0  # how often a worker checks that the process that started it is still there


def _init_worker(decoder_threads: int, log_level: int, log_format: str | None, parent: int) -> None:
    """Set up a worker process: its share of the cores for the decoders; the parent's log level and format (a
    spawned process starts with none, so warnings came out as bare text and infos were lost); Ctrl-C left to the
    parent, which stops the pool (the terminal sends it to every process of the group); and a watch on the parent:
    when it dies without stopping the pool (SIGKILL, or SIGTERM to it alone), the worker ends too instead of waiting
    forever on its task pipe (it holds that pipe's other end itself, so it never sees the end of it)."""
    set_decoder_threads(decoder_threads)
    logging.basicConfig(level=log_level, format=log_format or logging.BASIC_FORMAT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)  # (the parent is gone: nobody would read this worker's results)

    threading.Thread(target=watch, name="cv_reader_parent_watch", daemon=True).start()


def _new_pool(num_workers: int) -> ProcessPoolExecutor:
    # spawn: no fork of a process that holds decoder threads; parallelism is across videos (spec 11), and each
    # worker's decoders take its share of the cores.
    root = logging.getLogger()
    formats = [h.formatter._fmt for h in root.handlers if h.formatter is not None]
    return ProcessPoolExecutor(
        max_workers=num_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(decoder_threads_per_worker(num_workers), root.getEffectiveLevel(), formats[0] if formats else None,
                  os.getpid()),
    )  # fmt: skip


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool now (this process is interrupted or failing): cancel the queued jobs and terminate the workers,
    instead of waiting for the videos in flight (`shutdown(wait=True)`, which `with` would do)."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def _collect(running: dict[Future, dict], suspects: list[dict]) -> Iterator[dict]:
    """Results of the futures still running when the pool broke: finished ones as they are, the rest suspects."""
    for future, job in running.items():
        try:
            yield _with_job(future.result(), job)
        except BrokenProcessPool:
            suspects.append(job)
    running.clear()


def _pool_round(
    work: Callable[[dict], dict], queue: deque[dict], *, num_workers: int, suspects: list[dict]
) -> Iterator[dict]:
    """Run queued jobs in one pool until the queue is empty or the pool breaks (its in-flight jobs -> suspects)."""
    running: dict[Future, dict] = {}
    pool, stopped = _new_pool(num_workers), False
    try:
        while queue or running:
            while queue and len(running) < num_workers:
                job = queue.popleft()
                try:
                    running[pool.submit(run_guarded, work, job)] = job
                except BrokenProcessPool:  # a worker died since the last wait: this job never started
                    queue.appendleft(job)
                    yield from _collect(running, suspects)
                    return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                job = running.pop(future)
                try:
                    yield _with_job(future.result(), job)
                except BrokenProcessPool:
                    suspects.append(job)
                    broken = True
            if broken:
                yield from _collect(running, suspects)
                return
    except BaseException:  # Ctrl-C, SIGTERM (`cli`), or the consumer stopped: the workers end with this process
        _stop(pool)
        stopped = True
        raise
    finally:
        if not stopped:
            pool.shutdown(wait=True)


def _run_alone(work: Callable[[dict], dict], job: dict) -> dict:
    pool = _new_pool(1)
    try:
        result = _with_job(pool.submit(run_guarded, work, job).result(), job)
    except BrokenProcessPool:
        result = died(job)
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return result


def run_pool(work: Callable[[dict], dict], jobs: list[dict], *, num_workers: int) -> Iterator[dict]:
    """Yield `run_guarded(work, job)` for every job as the jobs finish, in `num_workers` spawned processes."""
    queue = deque(jobs)
    while queue:
        suspects: list[dict] = []
        yield from _pool_round(work, queue, num_workers=num_workers, suspects=suspects)
        if not suspects:
            continue
        logger.warning("a worker process died; %d item(s) were in flight, retrying each alone", len(suspects))
        if len(suspects) == 1:  # alone already: it is the one
            yield died(suspects[0])
            continue
        for job in suspects:
            yield _run_alone(work, job)


def run_jobs(work: Callable[[dict], dict], jobs: list[dict], *, num_workers: int, desc: str) -> Iterator[dict]:
    """Run `work(job)` for each job, yielding result dicts (`status` ok/skipped/failed, `job`, `error`) as they
    finish, with a progress bar.

    `num_workers >= 1` runs the jobs in that many worker processes (a crash or kill of one fails only its item);
    `num_workers == 0` runs them in this process (debugging; a crash then ends the run).
    """
    bar = tqdm(total=len(jobs), desc=desc, unit="video", dynamic_ncols=True, disable=None)
    try:
        results = (
            (_with_job(run_guarded(work, job), job) for job in jobs)
            if num_workers <= 0
            else run_pool(work, jobs, num_workers=num_workers)
        )
        for result in results:
            yield result
            bar.update()
    finally:
        bar.close()
