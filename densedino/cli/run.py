"""Running a command-line entry point: one-line errors, Ctrl-C with exit code 130, and a clean
process-group teardown."""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import Callable, Optional


def rank() -> int:
    """This process's rank in a multi-process run (0 otherwise), from the launcher's variables."""
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):  # torchrun, slurm, mpi
        if name in os.environ:
            return int(os.environ[name])
    return 0


def note(message: str) -> None:
    """One line on stderr, from rank 0 only."""
    if rank() == 0:
        print(message, file=sys.stderr)


def display_available() -> bool:
    """Whether a window can be opened (on Linux: an X11 or Wayland display is set)."""
    if sys.platform.startswith('linux'):
        return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))
    return True


def run_cli(main, args: argparse.Namespace, *,
            on_interrupt: Optional[Callable[[argparse.Namespace], str]] = None) -> None:
    """Run ``main(args)``; user errors become one line on stderr (``--debug`` for tracebacks).

    Ctrl-C stops with one line (``on_interrupt(args)``, e.g. how to resume; rank 0 only) and
    exit code 130 instead of a traceback.
    """
    finished = False
    try:
        if args.debug:
            main(args)
        else:
            _report_errors(main, args)
        finished = True
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        note(on_interrupt(args) if on_interrupt and rank() == 0 else 'interrupted')
        _close_process_group()
        if interrupted_torch_io(e):
            # torch's zip writer, left in the traceback of an interrupted torch.save, writes to
            # its closed buffer when destroyed and aborts the process ("terminate called ...",
            # exit -6): leave without running destructors (checkpoints are written atomically)
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(130)
        raise SystemExit(130) from None
    finally:
        _close_process_group(wait_for_peers=finished)


def _close_process_group(wait_for_peers: bool = False) -> None:
    """Tear the process group down before exit (gloo aborts in its destructor otherwise).

    After a run that finished, every rank first waits for the others (rank 0 may still be
    writing a checkpoint): a rank that tears its group down while a peer still uses it can abort
    the peer. After an error no rank waits, since a peer may never arrive.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def _report_errors(main, args: argparse.Namespace) -> None:
    try:
        main(args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - report, don't dump a 60-line traceback
        if caused_by_interrupt(e):
            raise KeyboardInterrupt from None
        logging.getLogger('densedino').debug('failed', exc_info=True)
        log_to_run_file(e)
        name, msg = describe_error(e)
        print(f'error: {name}: {msg} (run with --debug for the traceback)', file=sys.stderr)
        raise SystemExit(1) from None


def caused_by_interrupt(e: BaseException) -> bool:
    """Whether ``e`` was raised while a Ctrl-C was being handled (mmengine turns a
    ``KeyboardInterrupt`` in its config formatter, run at every checkpoint, into a
    ``SyntaxError``)."""
    return any(isinstance(exc, KeyboardInterrupt) for exc in _chain(e))


def interrupted_torch_io(e: BaseException) -> bool:
    """Whether ``e`` or an exception it arose from went through ``torch.serialization``."""
    module = osp.join('torch', 'serialization.py')
    for exc in _chain(e):
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith(module):
                return True
            tb = tb.tb_next
    return False


def _chain(e: BaseException):
    """``e`` and the exceptions it was raised from or while handling."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def describe_error(e: BaseException):
    """``(type name, one-line message)``; for an error re-raised from a DataLoader worker (its
    message holds the worker's whole traceback), the original type and message."""
    text = str(e)
    if text.startswith('Caught ') and _WORKER_TRACEBACK in text:
        found = _last_exception(text.split(_WORKER_TRACEBACK, 1)[1])
        if found is not None:
            return found
    return type(e).__name__, ' '.join(text.split()) or type(e).__name__


_WORKER_TRACEBACK = 'Original Traceback (most recent call last):'


def _last_exception(traceback_text: str):
    """``(type name, message)`` of the exception a formatted traceback ends with: the lines at
    column 0 after its last frame (``  File ...`` and its indented source lines)."""
    lines = traceback_text.strip('\n').splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File ')]
    start = frames[-1] + 1 if frames else 0
    while start < len(lines) and lines[start][:1].isspace():
        start += 1
    if start >= len(lines):
        return None
    qualified, _, message = '\n'.join(lines[start:]).partition(': ')
    name = qualified.strip().rsplit('.', 1)[-1]
    return name, ' '.join(message.split()) or name


def log_to_run_file(e: BaseException) -> None:
    """Write ``e``'s full traceback into the run's log file (the file handlers of mmengine's
    current logger), not on the console."""
    try:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, 'failed: %s',
                                   (type(e).__name__,), (type(e), e, e.__traceback__))
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
    except Exception:  # noqa: BLE001 - never hide the error being reported
        logging.getLogger('densedino').debug('cannot write to the log file', exc_info=True)
