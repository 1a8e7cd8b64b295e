"""Hessian-aware error feedback — the core's answer to *where does the error go?* for a matrix
that multiplies activations (GPTQ: Frantar, Ashkboos, Hoefler & Alistarh, 2023).

Quantizing the columns of ``W`` (``out × in``) one at a time, the error of column ``j`` is fed
onto the columns not yet quantized, weighted by the inverse Hessian ``H⁻¹`` of the layer's
least-squares objective ``‖W X − Ŵ X‖²`` (``H = XᵀX``): the optimal brain surgeon update

    e_j = (w_j − q(w_j)) / [H⁻¹]_jj,    W[:, k] −= e_j · [H⁻¹]_jk   for k > j,

taken with the upper Cholesky factor of ``H⁻¹`` (numerically stable and exact for this order)
and in lazy blocks of ``block`` columns (the block's own updates in the compiled kernel, the
rest of the matrix once per block as one matrix product), in chunks of :data:`ROWS` rows on
threads (rows never mix: the same codes as one chunk). The grid — each group's scale and
zero point — is fixed before the first column (static groups), so activation order (columns
by decreasing ``H_jj``) needs no permutation at inference.

It is the matrix twin of :func:`quanta.core.feedback.error_feedback_quantize`: there the error
goes through a filter onto the next samples; here through ``H⁻¹`` onto the next columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quanta.core import _kernels
from quanta.errors import ConfigError
from quanta.threads import each

#: rows quantized together (each row's columns depend on its own row only): 512 rows of a
#: 2048-wide layer are 8 MB of float64, and chunks run on threads
ROWS = 256


def _inverse_factor(a: np.ndarray, damp: float, *, keep: bool = False) -> np.ndarray:
    """Upper Cholesky factor of ``(A + λI)⁻¹`` with λ = damp · mean(diag A), raised ×10 until
    the matrix is positive definite, computed in place in the Fortran-ordered float64 ``a``
    (symmetric) by LAPACK: Cholesky, inverse from the factor, Cholesky again, each on the lower
    triangle — the strict upper triangle keeps ``A``, so a failed try is restored from it, and
    no second ``n × n`` matrix is ever made. Returns a view of ``a``; with ``keep`` the view's
    strict lower triangle still holds ``A`` (for :func:`_restore`), else zeros."""
    from scipy.linalg import lapack

    n = a.shape[0]
    diag = np.diag_indices(n)
    d0 = a[diag].copy()
    lam = damp * float(np.mean(d0))
    for _ in range(6):
        a[diag] = d0 + lam
        c, info = lapack.dpotrf(a, lower=1, overwrite_a=1, clean=0)
        if info == 0:
            c, info = lapack.dpotri(c, lower=1, overwrite_c=1)  # (A + λI)⁻¹, lower triangle
        if info == 0:
            c, info = lapack.dpotrf(c, lower=1, overwrite_a=1, clean=0)
        if info == 0:
            for j in range(1, 1 if keep else n):  # the strict upper triangle (A's copy) cleared
                c[:j, j] = 0.0
            return c.T  # L Lᵀ = (A + λI)⁻¹, so Lᵀ is the upper factor
        for j in range(n - 1):  # the lower triangle rebuilt from the upper one, then more damping
            a[j + 1:, j] = a[j, j + 1:]
        lam = max(lam * 10, 1e-8)
    raise ConfigError("the calibration Hessian is not positive definite even with damping")


def permute_symmetric(a: np.ndarray, perm: np.ndarray, tile: int = 512) -> None:
    """``a[i, j] ← a[perm[i], perm[j]]`` in place for a C-ordered symmetric square ``a``: the
    rows permuted by cycles, the matrix transposed tile by tile (``(P A)ᵀ = A Pᵀ``), the rows
    permuted again — one row and one tile of scratch."""
    n = a.shape[0]

    def rows() -> None:
        seen = np.zeros(n, bool)
        for s in range(n):
            if seen[s] or perm[s] == s:
                continue
            first, i = a[s].copy(), s
            while True:
                seen[i] = True
                j = int(perm[i])
                if j == s:
                    a[i] = first
                    break
                a[i] = a[j]
                i = j

    rows()
    for i0 in range(0, n, tile):
        a[i0:i0 + tile, i0:i0 + tile] = a[i0:i0 + tile, i0:i0 + tile].T.copy()
        for j0 in range(i0 + tile, n, tile):
            t = a[i0:i0 + tile, j0:j0 + tile].copy()
            a[i0:i0 + tile, j0:j0 + tile] = a[j0:j0 + tile, i0:i0 + tile].T
            a[j0:j0 + tile, i0:i0 + tile] = t.T
    rows()


def _ordered(h: np.ndarray, perm: np.ndarray | None, h_div: float, dead: np.ndarray,
             overwrite_h: bool) -> np.ndarray:
    """``h / h_div`` with rows and columns in the order ``perm`` (None: as they are), the ``dead``
    inputs (positions in that order) given a unit diagonal: a Fortran-ordered matrix — ``h``
    itself, permuted in place, with ``overwrite_h``; else a new one, copied a band of rows at a
    time."""
    n = h.shape[0]
    if overwrite_h:
        if perm is not None:
            permute_symmetric(h, perm)
        hp = h.T  # symmetric: its Fortran-ordered view is the same matrix
    elif perm is None:
        hp = np.array(h.T, order="F")
    else:
        hp = np.empty((n, n), order="F")
        ht = hp.T  # C-ordered view: ht[j, i] = hp[i, j] = h[perm[i], perm[j]]
        for j0 in range(0, n, ROWS):
            ht[j0:j0 + ROWS] = h.T[perm[j0:j0 + ROWS]][:, perm]
    if h_div != 1.0:
        hp /= h_div
    hp[dead, dead] = 1.0
    return hp


def gptq_quantize(w: np.ndarray, h: np.ndarray, scale: np.ndarray, zero: np.ndarray, *,
                  qmin: int, qmax: int, group_size: int, act_order: bool = True,
                  damp: float = 0.01, block: int = 128, levels: np.ndarray | None = None,
                  h_div: float = 1.0, overwrite_h: bool = False, restore_h: bool = False) -> np.ndarray:
    """Integer codes (``uint8``, ``out × in``) of ``w`` on a fixed grid.

    w: ``(out, in)``; h: ``(in, in)`` second moment of the inputs (``XᵀX/n``, or ``XᵀX`` with
    ``h_div = n``: divided here, element by element as it is copied, so that no second
    ``in × in`` matrix is made); scale, zero:
    ``(out, in / group_size)``, the grid of each group of ``group_size`` consecutive inputs
    (``codes = clip(round(w / scale + zero))``). Dead inputs (``H_jj = 0``) quantize to the
    grid's zero. ``damp`` is the relative diagonal damping; ``block`` the lazy-update width.
    levels: a sorted codebook — then the codes index it (``w ≈ scale · levels[code]``; ``zero``,
    ``qmin`` and ``qmax`` unused) and dead inputs take the level nearest zero.

    Memory: ``w`` in activation order, the codes, and one ``in × in`` float64 buffer that becomes
    the inverse factor — ``h`` itself with ``overwrite_h`` (a C-ordered float64 ``h`` the caller
    gives up: permuted and factored in place); the grid is expanded per chunk of rows.
    ``restore_h`` (with ``overwrite_h``): ``h`` holds ``XᵀX / h_div`` again on return, in the inputs'
    order (the factor is made beside its copy, in the other triangle — for :func:`refit_scales`).
    """
    overwrite_h = _writable(h, overwrite_h)
    h = np.asarray(h, dtype=np.float64)  # without overwrite_h: read, never written
    out, n = np.shape(w)
    if h.shape != (n, n) or n % group_size or scale.shape != (out, n // group_size):
        raise ConfigError(f"gptq: shapes do not agree (w {np.shape(w)}, h {h.shape}, scale {scale.shape})")
    diag = np.diag(h) / h_div if h_div != 1.0 else np.diag(h).copy()
    dead = diag <= 0
    diag[dead] = 1.0
    perm = np.argsort(-diag, kind="stable") if act_order else np.arange(n)
    w = np.asarray(w)[:, perm].astype(np.float64, copy=False)  # a copy, in activation order
    dead_at = np.flatnonzero(dead[perm])
    w[:, dead_at] = 0.0

    group = perm // group_size
    scale, zero = np.asarray(scale, np.float64), np.asarray(zero, np.float64)
    restore_h = restore_h and overwrite_h
    hp = _ordered(h, perm, h_div, dead_at, overwrite_h)
    kept_diag = np.diag(hp).copy() if restore_h else np.zeros(0)
    u = _inverse_factor(hp, damp, keep=restore_h)
    codes = np.zeros((out, n), _code_type(qmax, levels))
    diag_blocks = [np.triu(u[i1:i1 + block, i1:i1 + block]) for i1 in range(0, n, block)]

    def rows(r0: int) -> None:  # rows are independent: a chunk's working set stays in cache
        r1 = min(r0 + ROWS, out)
        wr = w[r0:r1].copy()
        s_cols = np.ascontiguousarray(scale[r0:r1][:, group])
        z_cols = np.ascontiguousarray(zero[r0:r1][:, group])
        for k, i1 in enumerate(range(0, n, block)):
            i2 = min(i1 + block, n)
            w1 = np.ascontiguousarray(wr[:, i1:i2])
            err = np.zeros_like(w1)
            c1 = np.zeros_like(w1)
            if levels is None:
                _kernels.gptq_block(w1, diag_blocks[k], s_cols[:, i1:i2], z_cols[:, i1:i2],
                                    float(qmin), float(qmax), c1, err)
            else:
                _kernels.gptq_block_codebook(w1, diag_blocks[k], s_cols[:, i1:i2],
                                             np.asarray(levels, np.float64), c1, err)
            codes[r0:r1, perm[i1:i2]] = c1  # back in the inputs' order
            wr[:, i2:] -= err @ u[i1:i2, i2:]

    each(rows, range(0, out, ROWS))
    if restore_h:
        kept_diag[dead_at] = 0.0
        _restore(h, kept_diag, perm)
    return codes


def gptq_lattice(w: np.ndarray, h: np.ndarray, scale: np.ndarray, lattice: Any, sub: int, *,
                 damp: float = 0.01, block: int = 128, h_div: float = 1.0,
                 overwrite_h: bool = False) -> np.ndarray:
    """GPTQ on a lattice codebook (:class:`quanta.core.lattice.Lattice`): the signed level of each
    weight (``out × in`` float32; the weight is ``scale · value``).

    The columns go in their own order (a vector is consecutive inputs), a run at a time — one
    vector, or the ``lattice.parity`` values whose signs are chosen together —: the run's signs
    and its vectors' nearest points at the fixed scales (``scale``: ``out × in / sub``, each
    sub-block of ``sub`` inputs), the squared error of each value weighted by the inverse
    factor's diagonal (``1 / U_jj²``, GPTQ's own weight of a lone column); then the run's error
    fed onto the columns after it, ``E · U_rr⁻¹ · U_r,rest`` — the same update as GPTQ's, for
    columns rounded together (GPTVQ, van Baalen et al., 2024). h, h_div, damp, block and
    overwrite_h as :func:`gptq_quantize` (no activation order: it would split the vectors)."""
    from scipy.linalg import solve_triangular

    from quanta.core.lattice import assign, signs

    out, n = np.shape(w)
    run = max(lattice.dim, lattice.parity)
    if n % sub or sub % run or block % run or np.shape(scale) != (out, n // sub):
        raise ConfigError(f"gptq: shapes do not agree (w {np.shape(w)}, sub-blocks of {sub}, scale "
                          f"{np.shape(scale)})")
    overwrite_h = _writable(h, overwrite_h)
    h = np.asarray(h, dtype=np.float64)
    dead = np.flatnonzero(np.diag(h) <= 0)
    hp = _ordered(h, None, h_div, dead, overwrite_h)
    w = np.array(w, np.float64)
    w[:, dead] = 0.0
    u = _inverse_factor(hp, damp)
    wt_cols = (1.0 / np.diag(u) ** 2).astype(np.float32)
    inv = [solve_triangular(np.triu(u[j:j + run, j:j + run]), np.eye(run)) for j in range(0, n, run)]
    values = np.zeros((out, n), np.float32)
    pv = lattice.values

    def rows(r0: int) -> None:
        r1 = min(r0 + ROWS, out)
        wr = w[r0:r1].copy()
        for i1 in range(0, n, block):
            i2 = min(i1 + block, n)
            err = np.zeros((r1 - r0, i2 - i1))
            for j in range(i1, i2, run):
                cur = wr[:, j:j + run].astype(np.float32)
                wt = np.broadcast_to(wt_cols[j:j + run], cur.shape)
                sg = signs(cur, wt, lattice.parity)
                s = scale[r0:r1, j // sub]
                idx, _ = assign((cur * sg).reshape(-1, lattice.dim),
                                lattice, np.repeat(s, run // lattice.dim), wt.reshape(-1, lattice.dim))
                v = sg * pv[idx.reshape(-1)].reshape(cur.shape)
                values[r0:r1, j:j + run] = v
                e = (wr[:, j:j + run] - s[:, None] * v) @ inv[j // run]
                err[:, j - i1:j - i1 + run] = e
                wr[:, j + run:i2] -= e @ u[j:j + run, j + run:i2]
            wr[:, i2:] -= err @ u[i1:i2, i2:]

    each(rows, range(0, out, ROWS))
    return values


def _writable(h: Any, overwrite_h: bool) -> bool:
    """Whether ``h`` may become the working buffer: asked (``overwrite_h``), and a writable
    C-ordered float64 array (its transpose the Fortran-ordered matrix LAPACK factors in place)."""
    return overwrite_h and isinstance(h, np.ndarray) and h.dtype == np.float64 and h.flags.c_contiguous \
        and h.flags.writeable


def _code_type(qmax: int, levels: np.ndarray | None) -> type:
    if qmax > 255 or (levels is not None and len(levels) > 256):
        raise ConfigError(f"gptq: codes up to {qmax} do not fit 8 bits")
    return np.uint8


def _restore(a: np.ndarray, diag: np.ndarray, perm: np.ndarray, tile: int = 512) -> None:
    """``H`` back in ``a`` after :func:`_inverse_factor` with ``keep``: its strict lower
    triangle (``H`` in activation order) mirrored over the factor, tile by tile, ``diag`` on the
    diagonal, then the inputs' order (``perm`` undone)."""
    n = a.shape[0]
    for i0 in range(0, n, tile):
        i1 = min(i0 + tile, n)
        t = a[i0:i1, i0:i1]
        low = np.tril(t, -1)
        t[...] = low + low.T
        a[i0:i1, i1:] = a[i1:, i0:i1].T
    a[np.diag_indices(n)] = diag
    permute_symmetric(a, np.argsort(perm))


#: bytes of the least-squares systems of one chunk of rows in :func:`refit_scales`
REFIT_BYTES = 64 << 20
#: bytes of one group's products for a chunk of rows (kept within a core's cache), and the
#: fewest rows a chunk takes (a wide layer's loop over its groups stays short)
REFIT_CACHE, REFIT_ROWS = 4 << 20, 16


def refit_scales(w: np.ndarray, h: np.ndarray, values: np.ndarray, group_size: int, scale: np.ndarray,
                 offset: np.ndarray | None = None, *, damp: float = 0.01, ridge: float = 1e-6,
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Each group's scale (and offset) that, the codes held, least moves the layer's outputs.

    With the codes chosen (by :func:`gptq_quantize`), a row of the weight is
    ``ŵ = Σ_g (s_g · v_g + m_g · 1_g)`` — ``values`` ``v`` the codes' places on the unit grid
    (``code − zero``, or a codebook's level), ``1_g`` group ``g``'s inputs. Its output error
    ``(w − ŵ)(H + λI)(w − ŵ)ᵀ`` is quadratic in the row's scales (and offsets): a least-squares
    problem of one unknown per group (two with ``offset``), all of a row's groups at once — they
    interact through ``H``. λ = damp · mean(diag H) as in GPTQ; a small ``ridge`` toward the given
    ``scale`` (``offset``) keeps a group whose values are all zero where it was.

    w: ``(out, in)``; h: ``(in, in)``, ``XᵀX / n``; values: ``(out, in)``; scale, offset:
    ``(out, in / group_size)``. Returns the new scales and offsets (None without ``offset``),
    float64, unrounded. Memory: :data:`REFIT_BYTES` of products per chunk of rows (``w`` and
    ``values`` taken in float64 a chunk at a time); time that of two ``(out × in) · (in × in)``
    products (torch's, on its threads).
    """
    import torch  # the batched products: torch's run on its threads, numpy's stacked ones do not

    w, v = np.asarray(w), np.asarray(values)  # taken in float64 a chunk of rows at a time
    out, n = w.shape
    g = int(group_size)
    if n % g or np.shape(h) != (n, n) or v.shape != w.shape or np.shape(scale) != (out, n // g):
        raise ConfigError(f"refit: shapes do not agree (w {w.shape}, h {np.shape(h)}, "
                          f"scale {np.shape(scale)})")
    nb = n // g
    ht = torch.from_numpy(np.asarray(h, np.float64))
    d = torch.diagonal(ht)
    lam = damp * float(d[d > 0].mean()) if bool((d > 0).any()) else 1.0
    hb = ht.view(nb, g, n)
    if offset is not None:  # 1ᵀ(H + λI)1 per pair of groups
        ones = ht.reshape(nb, g, nb, g).sum(dim=(1, 3)) + lam * g * torch.eye(nb, dtype=torch.float64)
    new_s = np.empty((out, nb))
    new_m = None if offset is None else np.empty((out, nb))
    k = 2 if offset is not None else 1  # unknowns per group
    step = max(REFIT_ROWS, REFIT_CACHE // (8 * n))  # a group's products stay in cache
    step = max(1, min(step, REFIT_BYTES // (8 * nb * nb * k * k)))  # the chunk's systems
    for r0 in range(0, out, step):
        r1 = min(r0 + step, out)
        vb = torch.from_numpy(v[r0:r1].astype(np.float64)).view(-1, nb, g)
        wr = torch.from_numpy(w[r0:r1].astype(np.float64))
        mvv = torch.empty(r1 - r0, nb, nb, dtype=torch.float64)
        mv1 = torch.empty_like(mvv) if offset is not None else None
        for b in range(nb):  # group b's values through H: one product of all the chunk's rows
            a = 0 if mv1 is not None else b  # without offsets the groups from b on (symmetric)
            q = (vb[:, b, :] @ hb[b, :, a * g:]).view(r1 - r0, -1, g)
            mvv[:, b, a:] = (q * vb[:, a:]).sum(2)
            if mv1 is not None:
                mv1[:, b, :] = q.sum(2)
        if mv1 is None:  # the upper triangle mirrored
            mvv = torch.triu(mvv) + torch.triu(mvv, 1).transpose(1, 2)
        mvv += torch.diag_embed(lam * (vb * vb).sum(2))
        hw = (wr @ ht + lam * wr).view(-1, nb, g)  # (H + λI) wᵀ
        rhs = (vb * hw).sum(2)
        x0 = torch.from_numpy(np.asarray(scale[r0:r1], np.float64))
        m = mvv
        if mv1 is not None:
            mv1 += torch.diag_embed(lam * vb.sum(2))
            low = torch.cat([mv1.transpose(1, 2), ones.expand_as(mvv)], 2)
            m = torch.cat([torch.cat([mvv, mv1], 2), low], 1)
            rhs = torch.cat([rhs, hw.sum(2)], 1)
            x0 = torch.cat([x0, torch.from_numpy(np.asarray(offset[r0:r1], np.float64))], 1)
        reg = ridge * torch.diagonal(m, dim1=1, dim2=2).abs() + 1e-300
        x = torch.linalg.solve(m + torch.diag_embed(reg), rhs + reg * x0).numpy()
        new_s[r0:r1] = x[:, :nb]
        if new_m is not None:
            new_m[r0:r1] = x[:, nb:]
    return new_s, new_m
