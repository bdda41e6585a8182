"""Fused C kernels for the monomial SLAF on CPU, built on first use.

The eager fast path runs one PyTorch op per degree and per reduction, so at
degree 4 a layer makes about 4 passes over its input in forward and 14 in
backward. The kernels
in ``csrc/monomial.c`` make one pass each: Horner's rule with the input range
folded in, and one backward pass that writes dL/dx and sums dL/dc and dL/db per
feature. They are plain C with OpenMP, built with the system compiler (``$CC``,
else ``cc``) into ``$XDG_CACHE_HOME/slaf_cli/native`` and loaded with ctypes,
which takes 10 to 30 s once per machine and source version.

:class:`NativeKernels` runs these kernels for float32 and float64 CPU tensors and
the eager :class:`~slaf_cli.nn.functional.Kernels` for anything else (CUDA,
half precision). When the build fails it logs one warning, and every layer uses
the eager kernels.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from slaf_cli.data.cache import is_writable_dir, user_cache_dir
from slaf_cli.nn.bases.base import Basis
from slaf_cli.nn.functional import Kernels

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).parent / "csrc"
SOURCES = ("monomial.c", "monomial_body.h")
# Kept in step with MAX_TERMS in monomial.c.
MAX_TERMS = 16
# -march=native first, then without it for compilers or CPUs that lack it, then
# without OpenMP for compilers that lack it (Apple clang): one thread per kernel.
FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared"],
    ["-O3", "-fopenmp", "-fPIC", "-shared"],
    ["-O3", "-fPIC", "-shared"],
)
SUFFIXES = {torch.float32: "f32", torch.float64: "f64"}
BUILD_TIMEOUT = 300  # seconds per compiler call

_POINTER = ctypes.c_void_p
_INT = ctypes.c_int64
_SIGNATURES = {
    "poly_eval_rows": [_POINTER, _POINTER, _INT, _INT, _INT, _INT, _INT]
    + [_POINTER, ctypes.c_int, _POINTER, _POINTER, ctypes.c_int],
    "poly_eval_lanes": [_POINTER, _POINTER, _INT, _INT, _INT, _INT]
    + [_POINTER, ctypes.c_int, _POINTER, _POINTER, ctypes.c_int],
    "poly_grad_rows": [_POINTER, _POINTER, _POINTER, _INT, _INT, _INT, _INT, _INT]
    + [_POINTER, _POINTER, _POINTER, ctypes.c_int],
    "poly_grad_lanes": [_POINTER, _POINTER, _POINTER, _INT, _INT, _INT, _INT]
    + [_POINTER, _POINTER, _POINTER, ctypes.c_int],
    "moments_rows": [_POINTER, _INT, _INT, _INT, _INT]
    + [_POINTER, _POINTER, _POINTER, _POINTER, ctypes.c_int],
    "moments_lanes": [_POINTER, _INT, _INT, _INT]
    + [_POINTER, _POINTER, _POINTER, _POINTER, ctypes.c_int],
}
# Functions that return a status: 0, or 1 when a scratch buffer is not allocated.
_WITH_STATUS = ("poly_grad_rows", "poly_grad_lanes", "moments_rows", "moments_lanes")

_library: ctypes.CDLL | None = None
_attempted = False
_FUNCTIONS: dict[str, _Functions] = {}
_cache_dir: Path | None = None


def _cpu_flags() -> str:
    """Return the CPU's feature flags, which key the cache per instruction set
    for a home folder that several machines share."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def native_compiler() -> str:
    """Return the compiler's first ``--version`` line, or its path if that fails."""
    compiler = _compiler()
    if compiler is None:
        return "no compiler"
    try:
        result = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=30
        )
        return (result.stdout.splitlines() or [compiler])[0]
    except (OSError, subprocess.SubprocessError):
        return compiler


def _private(folder: Path) -> bool:
    """Return whether ``folder`` belongs to this user and no one else can write it."""
    info = folder.stat()
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    return info.st_uid == owner and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def native_cache_dir() -> Path:
    """Return the folder for built libraries: the user cache, else a temp folder.

    The second serves a cache folder that is missing, read-only or a file. It is
    used only when it is private to this user, because any library in it gets
    loaded. The choice is made once per process.
    """
    global _cache_dir
    if _cache_dir is not None:
        return _cache_dir
    preferred = user_cache_dir() / "native"
    user = getattr(os, "getuid", lambda: "user")()
    fallback = Path(tempfile.gettempdir()) / f"slaf_cli-{user}" / "native"
    for folder in (preferred, fallback):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            usable = is_writable_dir(folder)
            if folder == fallback:
                usable = usable and _private(folder) and _private(folder.parent)
        except OSError:
            continue
        if usable:
            if folder != preferred:
                logger.info("%s is not writable; using %s", preferred, folder)
            _cache_dir = folder
            return folder
    raise OSError(
        f"no writable folder for the native SLAF kernels: {preferred}, and "
        f"{fallback} is not a folder private to this user"
    )


def library_path(compiler: str, flags: list[str]) -> Path:
    """Return the cache path of the library that ``compiler`` builds with ``flags``."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((SOURCE_DIR / name).read_bytes())
    for part in (compiler, " ".join(flags), platform.machine(), _cpu_flags()):
        digest.update(part.encode())
    return native_cache_dir() / f"monomial-{digest.hexdigest()[:16]}.so"


class BuildInterrupted(RuntimeError):
    """A build stopped by a signal (Ctrl-C, say) or a timeout. Another flag set
    would fare no better, and a later run may succeed."""


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``target``, so that of several processes
    (sweep jobs, test workers) one builds and the others wait for its result."""
    with open(target.with_suffix(".lock"), "w") as handle:
        try:
            import fcntl
        except ImportError:  # Not on POSIX: no lock, but the rename keeps files whole.
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process to build %s", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _digest_path(target: Path) -> Path:
    return target.with_suffix(".sha256")


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary libraries that a killed build left over an hour ago."""
    for path in folder.glob("tmp*.so"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > 3600:
                path.unlink()


def _build(compiler: str, flags: list[str], target: Path) -> None:
    """Compile into a temporary file beside ``target``, record its digest, then
    rename it, so no process ever loads a partial file."""
    _remove_stale_temporaries(target.parent)
    start = time.perf_counter()
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        command = [compiler, *flags, str(SOURCE_DIR / "monomial.c"), "-o", temporary]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=BUILD_TIMEOUT
            )
        except subprocess.TimeoutExpired as error:
            raise BuildInterrupted(
                f"{compiler} timed out after {error.timeout} s"
            ) from error
        if result.returncode < 0:
            raise BuildInterrupted(f"{compiler} stopped by signal {-result.returncode}")
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            detail = lines[0] if lines else f"exit status {result.returncode}"
            raise RuntimeError(f"{compiler} failed: {detail}")
        os.chmod(temporary, 0o755)
        _digest_path(target).write_text(_sha256(temporary) + "\n")
        os.replace(temporary, target)
        logger.info("built %s in %.1f s", target, time.perf_counter() - start)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _intact(path: Path) -> bool:
    """Return whether ``path`` matches the digest recorded when it was built.

    Loading a truncated shared library can kill the process with SIGBUS, so a
    file that fails this check is never loaded.
    """
    digest = _digest_path(path)
    if not (path.is_file() and digest.is_file()):
        return False
    return digest.read_text().strip() == _sha256(path)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    for name, arguments in _SIGNATURES.items():
        for suffix in SUFFIXES.values():
            function = getattr(lib, f"{name}_{suffix}")
            function.argtypes = arguments
            function.restype = ctypes.c_int if name in _WITH_STATUS else None
    return lib


def _load_or_build(compiler: str, flags: list[str], first: bool) -> ctypes.CDLL:
    """Load the cached library, building it first when it is missing or damaged.

    A cached file whose digest does not match (truncated, or changed after the
    build) is deleted and built again.
    """
    path = library_path(compiler, flags)
    with _build_lock(path):
        if path.exists() and not _intact(path):
            logger.warning(
                "discarding the native SLAF kernels at %s, which are damaged or "
                "have no matching .sha256 file; building them again",
                path,
            )
            path.unlink()
        if not path.exists():
            if first:
                logger.info(
                    "building the native SLAF kernels with %s (once per machine "
                    "and source version, 10 to 30 s)",
                    compiler,
                )
            else:
                logger.info("building again with flags %s", " ".join(flags))
            _build(compiler, flags, path)
        return _load(path)


def native_library() -> ctypes.CDLL | None:
    """Return the loaded kernels, building them on the first call; None if that fails.

    A failure logs one warning per process. A failed build also leaves a marker
    file beside the library, so later processes skip the build until it is
    removed. An interrupted build leaves none.
    """
    global _library, _attempted
    if _attempted:
        return _library
    _attempted = True
    compiler = _compiler()
    if compiler is None:
        logger.warning(
            "no C compiler %r found for the native SLAF kernels; using the PyTorch "
            "kernels. Install one or set CC, or set activation.native=false.",
            os.environ.get("CC", "cc"),
        )
        return None
    try:
        marker = library_path(compiler, FLAG_SETS[0]).with_suffix(".failed")
    except OSError as error:  # No sources, or no writable folder.
        logger.warning(
            "the native SLAF kernels are unavailable (%s); using the PyTorch kernels",
            error,
        )
        return None
    if marker.exists():
        logger.warning(
            "skipping the native SLAF kernels: an earlier build with %s failed (%s). "
            "Using the PyTorch kernels; delete %s to build again.",
            compiler,
            marker.read_text().strip(),
            marker,
        )
        return None
    for flags in FLAG_SETS:  # An intact earlier build, in order of preference.
        with contextlib.suppress(OSError, AttributeError):
            path = library_path(compiler, flags)
            if _intact(path):
                _library = _load(path)
                return _library
    errors: list[Exception] = []
    for index, flags in enumerate(FLAG_SETS):
        try:
            _library = _load_or_build(compiler, flags, first=index == 0)
            return _library
        except BuildInterrupted as error:
            logger.warning("building the native SLAF kernels stopped: %s", error)
            return None
        except (
            OSError,
            AttributeError,
            RuntimeError,
            subprocess.SubprocessError,
        ) as error:
            errors.append(error)
            if index + 1 < len(FLAG_SETS):
                logger.info("the build with flags %s failed: %s", flags, error)
    reason = f"{type(errors[-1]).__name__}: {str(errors[-1])[:200]}"
    remembered = ""
    # Only compiler errors are remembered; a full disk or a lost lock may pass.
    if all(type(error) is RuntimeError for error in errors):
        with contextlib.suppress(OSError):
            marker.write_text(reason + "\n")
            remembered = f" Later runs skip the build until {marker} is deleted."
    logger.warning(
        "building the native SLAF kernels with %s failed (%s); using the PyTorch "
        "kernels.%s Set activation.native=false to skip the build.",
        compiler,
        reason,
        remembered,
    )
    return None


def reset_native_library() -> None:
    """Forget the loaded library and any failed build, so the next call builds or
    loads again (used by tests that change ``CC``)."""
    global _library, _attempted, _cache_dir
    _library = None
    _attempted = False
    _cache_dir = None
    _FUNCTIONS.clear()


def _check(status: int) -> None:
    if status != 0:
        raise MemoryError(
            "the native SLAF kernels failed to allocate a scratch buffer; free "
            "memory, lower the batch size or set activation.native=false"
        )


def _pointer(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _layout(z: Tensor) -> tuple[int, int, int]:
    n, c = z.shape[0], z.shape[1]
    return n, c, z.numel() // (n * c)


def supports_native(basis: Basis) -> bool:
    """Return whether :class:`NativeKernels` implements this basis."""
    return basis.name == "monomial" and basis.num_terms <= MAX_TERMS


class NativeKernels(Kernels):
    """The monomial basis' kernels in fused C for float32 and float64 CPU tensors.

    Other tensors, or a machine where the build failed, get the eager kernels of
    :class:`~slaf_cli.nn.functional.Kernels`. The library is built on the first
    call with a CPU tensor, so a model that only runs on CUDA never builds it.
    """

    def __init__(self, basis: Basis) -> None:
        if not supports_native(basis):
            raise ValueError(
                f"native kernels exist for monomial bases up to degree {MAX_TERMS}, "
                f"not {basis.name} of degree {basis.degree}"
            )
        super().__init__(basis)

    def _native(self, *tensors: Tensor) -> Any:
        """Return the library's functions for these tensors' dtype, or None when
        the eager kernels must run."""
        z = tensors[0]
        suffix = SUFFIXES.get(z.dtype)
        if suffix is None or z.device.type != "cpu" or z.numel() == 0:
            return None
        if any(t.dtype != z.dtype or t.device.type != "cpu" for t in tensors[1:]):
            return None
        lib = native_library()
        if lib is None:
            return None
        if suffix not in _FUNCTIONS:
            _FUNCTIONS[suffix] = _Functions(lib, suffix)
        return _FUNCTIONS[suffix]

    def _evaluate(
        self,
        z: Tensor,
        polynomial: Tensor,
        functions: Any,
        track: tuple[Tensor, Tensor] | None = None,
        out: Tensor | None = None,
    ) -> Tensor:
        """Return sum_i polynomial[:, i] z^i, or add it to ``out`` (contiguous,
        z's shape) when given."""
        z = z.contiguous()
        accumulate = out is not None
        if out is None:
            out = torch.empty_like(z)
        n, c, s = _layout(z)
        low, high = (None, None) if track is None else track
        polynomial = polynomial.contiguous()
        rows, degree = polynomial.shape[0], polynomial.shape[1] - 1
        ends = (out.data_ptr(), accumulate, _pointer(low), _pointer(high))
        threads = torch.get_num_threads()
        if s > 1:
            functions.poly_eval_rows(
                z.data_ptr(), polynomial.data_ptr(), rows, degree, n, c, s, *ends,
                threads,
            )  # fmt: skip
        else:
            functions.poly_eval_lanes(
                z.data_ptr(), polynomial.data_ptr(), rows, degree, n, c, *ends,
                threads,
            )  # fmt: skip
        return out

    def weighted_sum(
        self,
        z: Tensor,
        coefficients: Tensor,
        bias: Tensor,
        track: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        buffers = () if track is None else track
        functions = self._native(z, coefficients, bias, *buffers)
        if functions is None:
            return super().weighted_sum(z, coefficients, bias, track)
        polynomial = torch.cat([bias.unsqueeze(1), coefficients], dim=1)
        return self._evaluate(z, polynomial, functions, track)

    def weighted_sum_backward(
        self, z: Tensor, coefficients: Tensor, grad_output: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        functions = self._native(z, coefficients, grad_output)
        if functions is None:
            return super().weighted_sum_backward(z, coefficients, grad_output)

        z = z.contiguous()
        grad_output = grad_output.contiguous()
        coefficients = coefficients.contiguous()
        rows, terms = coefficients.shape
        grad_z = torch.empty_like(z)
        grad_coefficients = torch.empty_like(coefficients)
        grad_bias = coefficients.new_empty(rows)

        n, c, s = _layout(z)
        pointers = (z.data_ptr(), grad_output.data_ptr(), coefficients.data_ptr())
        outputs = (
            grad_z.data_ptr(),
            grad_coefficients.data_ptr(),
            grad_bias.data_ptr(),
        )
        threads = torch.get_num_threads()
        if s > 1:
            # NOTE: the kernel allocates n * c * (terms + 1) doubles of partial sums,
            # more than x itself when s is below about 2 * (terms + 1).
            status = functions.poly_grad_rows(
                *pointers, rows, terms, n, c, s, *outputs, threads
            )
        else:
            status = functions.poly_grad_lanes(
                *pointers, rows, terms, n, c, *outputs, threads
            )
        _check(status)
        return grad_z, grad_coefficients, grad_bias

    def term_moments(
        self, z: Tensor, track: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        buffers = () if track is None else track
        functions = self._native(z, *buffers)
        if functions is None:
            return super().term_moments(z, track)
        z = z.contiguous()
        degree = self.basis.degree
        n, c, s = _layout(z)
        # E[g_j] = E[z^j] and E[g_j^2] = E[z^(2j)], summed in float64 by the kernel.
        mean = z.new_empty(c, degree)
        variance = z.new_empty(c, degree)
        low, high = (None, None) if track is None else track
        ends = (mean.data_ptr(), variance.data_ptr(), _pointer(low), _pointer(high))
        threads = torch.get_num_threads()
        if s > 1:
            status = functions.moments_rows(
                z.data_ptr(), degree, n, c, s, *ends, threads
            )
        else:
            status = functions.moments_lanes(z.data_ptr(), degree, n, c, *ends, threads)
        _check(status)
        return mean, variance

    def term_moments_backward(
        self, z: Tensor, offsets: Tensor, scales: Tensor, out: Tensor | None = None
    ) -> Tensor:
        accumulate = out is not None and out.is_contiguous() and out.dtype == z.dtype
        functions = self._native(z, offsets, scales)
        if functions is None or (out is not None and not accumulate):
            return super().term_moments_backward(z, offsets, scales, out)
        polynomial = self.basis.moments_backward_polynomial(offsets, scales)
        return self._evaluate(z, polynomial, functions, out=out)

    def __deepcopy__(self, memo: dict[int, Any]) -> NativeKernels:
        return self  # It contains no tensors, so copies of a layer share it.


class _Functions:
    """The library's functions of one dtype, by name without the suffix."""

    def __init__(self, lib: ctypes.CDLL, suffix: str) -> None:
        for name in _SIGNATURES:
            setattr(self, name, getattr(lib, f"{name}_{suffix}"))
