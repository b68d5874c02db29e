"""Small ``njit`` functions written into a generated module when its program uses them
(reductions over some axes, sorts, scatters, batched products).
"""

from __future__ import annotations

import math

# ---------------------------------------------------------------------------------------------
# Helpers written into a generated module when its program uses them
# ---------------------------------------------------------------------------------------------

_DECORATOR = "@njit(cache=True, nogil=True, error_model='numpy')"


def decorator(name: str) -> str:
    """The ``njit`` line of helper ``name``: the elementwise functions of :data:`VECTORISED`
    are inlined into the loops that call them by Numba itself (LLVM, left to decide, keeps a
    call per element in a loop nest: 7.5 ns an element instead of 1)."""
    if name in _SCALAR:
        return _DECORATOR.replace(")", ", inline='always')")
    return _DECORATOR


_HELPERS: dict[str, str] = {
    # --- the sum of a float32/float16 array with a float64 accumulator
    "_rsum_wide": """
def _rsum_wide(x):
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s
""",
    # --- a part of a concatenation copied into its place: ``_put_block``'s ``out`` is the
    # result as (the axes before the joined one, the joined one, the axes after it), ``part``
    # n of its places along the joined axis, any layout, any dtype (cast where it is stored);
    # ``_put_flat``'s, joined along the first axis, is flat and ``at`` the part's first element
    "_put_flat": """
def _put_flat(out, at, part):
    src = part.ravel()
    for i in range(src.size):
        out[at + i] = src[i]
""",
    "_put_block": """
def _put_block(out, at, n, part):
    src = part.ravel()
    outer, _, inner = out.shape
    q = 0
    for o in range(outer):
        for j in range(at, at + n):
            for i in range(inner):
                out[o, j, i] = src[q]
                q += 1
""",
    # --- reductions of a C-contiguous 2-D array: over its rows' elements (``_last``, result
    # per row) or over its rows (``_first``, result per column).  ``z`` is the typed zero of
    # the result (float32 stays float32; bool sums to int64).
    # (integers, booleans and sums into another dtype: one by one from ``z``)
    "_rsum_last_seq": """
def _rsum_last_seq(x, z):
    n, m = x.shape
    out = numpy.full(n, z)
    for i in range(n):
        s = z
        for j in range(m):
            s += x[i, j]
        out[i] = s
    return out
""",
    "_rsum_first": """
def _rsum_first(x, z):
    n, m = x.shape
    out = numpy.full(m, z)
    for i in range(n):
        for j in range(m):
            out[j] += x[i, j]
    return out
""",
    # --- over the middle axis of a C-contiguous 3-D array (result (a, c), flat): the order of
    # ``_rsum_last`` on the transposed copy, without the copy
    "_rsum_mid": """
def _rsum_mid(x, z):
    a, b, c = x.shape
    out = numpy.full((a, c), z)
    for i in range(a):
        for k in range(c):
            s = z
            for j in range(b):
                s += x[i, j, k]
            out[i, k] = s
    return out.reshape(a * c)
""",
    "_rprod_last": """
def _rprod_last(x, z):
    n, m = x.shape
    out = numpy.full(n, z)
    for i in range(n):
        s = z + 1
        for j in range(m):
            s *= x[i, j]
        out[i] = s
    return out
""",
    "_rprod_first": """
def _rprod_first(x, z):
    n, m = x.shape
    out = numpy.full(m, z + 1)
    for i in range(n):
        for j in range(m):
            out[j] *= x[i, j]
    return out
""",
    # max/min propagate NaN, as NumPy's do
    "_rmax_last": """
def _rmax_last(x, z):
    n, m = x.shape
    out = numpy.empty(n, x.dtype)
    for i in range(n):
        s = x[i, 0]
        for j in range(1, m):
            v = x[i, j]
            if v > s or v != v:
                s = v
        out[i] = s
    return out
""",
    "_rmax_first": """
def _rmax_first(x, z):
    n, m = x.shape
    out = x[0].copy()
    for i in range(1, n):
        for j in range(m):
            v = x[i, j]
            if v > out[j] or v != v:
                out[j] = v
    return out
""",
    "_rmin_last": """
def _rmin_last(x, z):
    n, m = x.shape
    out = numpy.empty(n, x.dtype)
    for i in range(n):
        s = x[i, 0]
        for j in range(1, m):
            v = x[i, j]
            if v < s or v != v:
                s = v
        out[i] = s
    return out
""",
    "_rmin_first": """
def _rmin_first(x, z):
    n, m = x.shape
    out = x[0].copy()
    for i in range(1, n):
        for j in range(m):
            v = x[i, j]
            if v < out[j] or v != v:
                out[j] = v
    return out
""",
    "_rhypot_last": """
def _rhypot_last(x, z):
    n, m = x.shape
    out = numpy.empty(n, x.dtype)
    for i in range(n):
        s = x[i, 0]
        for j in range(1, m):
            s = numpy.hypot(s, x[i, j])
        out[i] = s
    return out
""",
    # NumPy's _var: mean (sum / n), then the sum of squared deviations / (n - ddof)
    "_rvar_last": """
def _rvar_last(x, n_, d_):
    n, m = x.shape
    out = numpy.full(n, n_ - n_)
    for i in range(n):
        s = n_ - n_
        for j in range(m):
            s += x[i, j]
        mu = s / n_
        q = n_ - n_
        for j in range(m):
            d = x[i, j] - mu
            q += d * d
        out[i] = q / d_
    return out
""",
    # --- the variance over the rows of a C-contiguous 2-D array (the leading axes), one result
    # per column: the sums run down each column in row order, as NumPy's reduction over a
    # leading axis does, and the loops run along the rows, so LLVM vectorises them (the same
    # sums as ``_rvar_last`` of the transposed copy, without the copy: 4x faster)
    "_rvar_first": """
def _rvar_first(x, n_, d_):
    n, m = x.shape
    mu = numpy.full(m, n_ - n_)
    for i in range(n):
        for j in range(m):
            mu[j] += x[i, j]
    for j in range(m):
        mu[j] = mu[j] / n_
    out = numpy.full(m, n_ - n_)
    for i in range(n):
        for j in range(m):
            d = x[i, j] - mu[j]
            out[j] += d * d
    for j in range(m):
        out[j] = out[j] / d_
    return out
""",
    "_correlate_pads": """
def _correlate_pads(a, v, left, right):
    n, m = a.shape[0], v.shape[0]
    size = n + left + right - m + 1
    out = numpy.zeros(size, (a[:1] * v[:1]).dtype)
    for j in range(m):
        vj = v[j]
        off = j - left
        lo, hi = max(0, -off), min(size, n - off)
        # slices indexed from 0: no negative-index check, so LLVM vectorises the loop (4x)
        o, s = out[lo:hi], a[lo + off : hi + off]
        for k in range(hi - lo):
            o[k] += s[k] * vj
    return out
""",
    "_correlate_dots": """
def _correlate_dots(a, v, left, right):
    # few outputs, a long kernel: one BLAS dot per output over its overlap (numpy.correlate's
    # own way of summing)
    n, m = a.shape[0], v.shape[0]
    size = n + left + right - m + 1
    out = numpy.zeros(size, (a[:1] * v[:1]).dtype)
    for k in range(size):
        off = k - left
        lo, hi = max(0, -off), min(m, n - off)
        if hi > lo:
            out[k] = numpy.dot(a[lo + off : hi + off], v[lo:hi])
    return out
""",
    "_cumsum_last": """
def _cumsum_last(x, z):
    n, m = x.shape
    out = numpy.full((n, m), z)
    for i in range(n):
        s = z
        for j in range(m):
            s += x[i, j]
            out[i, j] = s
    return out
""",
    "_cumprod_last": """
def _cumprod_last(x, z):
    n, m = x.shape
    out = numpy.full((n, m), z)
    for i in range(n):
        s = z + 1
        for j in range(m):
            s *= x[i, j]
            out[i, j] = s
    return out
""",
    "_sort_last": """
def _sort_last(x):
    n, m = x.shape
    out = numpy.empty((n, m), x.dtype)
    for i in range(n):
        out[i] = numpy.sort(x[i])
    return out
""",
    "_sort_permute_last": """
def _sort_permute_last(g, x):
    n, m = x.shape
    out = numpy.empty((n, m), g.dtype)
    for i in range(n):
        idx = numpy.argsort(x[i], kind='mergesort')
        for j in range(m):
            out[i, j] = g[i, idx[j]]
    return out
""",
    "_sort_unpermute_last": """
def _sort_unpermute_last(g, x):
    n, m = x.shape
    out = numpy.empty((n, m), g.dtype)
    for i in range(n):
        idx = numpy.argsort(x[i], kind='mergesort')
        for j in range(m):
            out[i, idx[j]] = g[i, j]
    return out
""",
    # batched matrix product of C-contiguous (b, m, k) and (b, k, n)
    "_bmm": """
def _bmm(a, b):
    nb = a.shape[0]
    out = numpy.empty((nb, a.shape[1], b.shape[2]), a.dtype)
    for i in range(nb):
        out[i] = numpy.dot(a[i], b[i])
    return out
""",
    # scatter through a flat index array: assignment (positions unique) or accumulation
    "_scatter_set": """
def _scatter_set(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] = g[j]
    return out
""",
    "_scatter_add": """
def _scatter_add(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] += g[j]
    return out
""",
    "_scatter_set_s": """
def _scatter_set_s(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] = g
    return out
""",
    "_scatter_add_s": """
def _scatter_add_s(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] += g
    return out
""",
    # rows of a (rows, rest) table chosen by integer arrays computed at run time; element by
    # element (a row slice per j costs Numba a view: 2-5x slower on rows of 16), and added in
    # the order of j, as numpy.add.at adds them
    "_take_rows": """
def _take_rows(x, lin):
    m = x.shape[1]
    out = numpy.empty((lin.shape[0], m), x.dtype)
    for j in range(lin.shape[0]):
        r = lin[j]
        for c in range(m):
            out[j, c] = x[r, c]
    return out
""",
    "_add_rows": """
def _add_rows(out, lin, g):
    m = g.shape[1]
    for j in range(lin.shape[0]):
        r = lin[j]
        for c in range(m):
            out[r, c] += g[j, c]
    return out
""",
    # the same, row j of g being row rows[j] of src (g a broadcast of src: never made)
    "_add_rows_of": """
def _add_rows_of(out, lin, src, rows):
    m = src.shape[1]
    for j in range(lin.shape[0]):
        r = lin[j]
        k = rows[j]
        for c in range(m):
            out[r, c] += src[k, c]
    return out
""",
    # an integer index array -> non-negative positions, with NumPy's bounds check
    "_wrap_index": """
def _wrap_index(i, n):
    out = numpy.empty(i.shape, numpy.intp)
    fi = i.ravel()
    fo = out.ravel()
    for j in range(fi.shape[0]):
        v = fi[j]
        if v < 0:
            v += n
        if v < 0 or v >= n:
            raise IndexError("index out of bounds")
        fo[j] = v
    return out
""",
}


def pairwise_block(get: str, n: str, out: str, neg: bool, pad: str) -> list[str]:
    """Lines that set ``out`` to NumPy's pairwise sum of ``n`` (8 <= n <= 128) elements
    ``get.format(k)``, k = 0, 1, ...: eight running sums over the elements in steps of 8,
    added as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the last n % 8 elements
    one by one (numpy/_core/src/umath/loops_utils.h.src).  The eight sums are independent, so
    LLVM vectorises them (its indices count from 0: no wraparound check stops it).  ``neg``
    sums the negated elements (subtracting, the same bits)."""
    at = get.format
    sign, op = ("-", "-=") if neg else ("", "+=")
    lines = [f"r{k} = {sign}{at(k)}" for k in range(8)]
    lines += [
        f"e = {n} - {n} % 8",
        "for q in range(1, e // 8):",
        "    p = 8 * q",
        *(f"    r{k} {op} {at(f'p + {k}' if k else 'p')}" for k in range(8)),
        "s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))",
        f"for p in range(e, {n}):",
        f"    s {op} {at('p')}",
        f"{out} = s",
    ]
    return [pad + line for line in lines]


def _pairwise_rows(name: str, neg: bool) -> str:
    """``name(x, z)``: the sums of the rows of the C-contiguous 2-D ``x``, each in NumPy's
    pairwise order (the same bits as ``x.sum(axis=1)``): from ``z`` one by one for rows of
    fewer than 8, :func:`pairwise_block` for rows of up to 128, and longer rows halved
    (rounded down to a multiple of 8) until they are, the halves' sums added as NumPy's
    recursion does, here walked with a stack."""
    op = "-=" if neg else "+="
    block = pairwise_block("x[i, {}]", "m", "out[i]", neg, " " * 12)
    # (the leaf reads a slice from 0: indices LLVM knows are not negative, so no wraparound
    # check stops it vectorising)
    leaf = pairwise_block("xs[{}]", "c", "vals[vp]", neg, " " * 16)
    return "\n".join(
        [
            "",
            f"def {name}(x, z):",
            "    n, m = x.shape",
            "    out = numpy.full(n, z)",
            "    if m < 8:",
            "        for i in range(n):",
            "            s = z",
            "            for j in range(m):",
            f"                s {op} x[i, j]",
            "            out[i] = s",
            "        return out",
            "    if m <= 128:",
            "        for i in range(n):",
            *block,
            "        return out",
            "    los = numpy.empty(64, numpy.int64)",
            "    cs = numpy.empty(64, numpy.int64)",
            "    sts = numpy.empty(64, numpy.int64)",
            "    vals = numpy.empty(64, out.dtype)",
            "    for i in range(n):",
            "        los[0], cs[0], sts[0] = 0, m, 0",
            "        sp, vp = 1, 0",
            "        while sp > 0:",
            "            lo, c = los[sp - 1], cs[sp - 1]",
            "            if c <= 128:",
            "                xs = x[i, lo:]",
            *leaf,
            "                vp += 1",
            "                sp -= 1",
            "                continue",
            "            h = c // 2",
            "            h -= h % 8",
            "            st = sts[sp - 1]",
            "            sts[sp - 1] = st + 1",
            "            if st == 0:",
            "                los[sp], cs[sp], sts[sp] = lo, h, 0",
            "                sp += 1",
            "            elif st == 1:",
            "                los[sp], cs[sp], sts[sp] = lo + h, c - h, 0",
            "                sp += 1",
            "            else:",
            "                vals[vp - 2] = vals[vp - 2] + vals[vp - 1]",
            "                vp -= 1",
            "                sp -= 1",
            "        out[i] = vals[0]",
            "    return out",
            "",
        ]
    )


_HELPERS["_rsum_last"] = _pairwise_rows("_rsum_last", False)
_HELPERS["_rsum_last_neg"] = _pairwise_rows("_rsum_last_neg", True)

# The same sums of -x, subtracting as they read (x - y is x + (-y) exactly, signed zeros too):
# the gradient of y in x - y summed to y's shape without the negated array being made.
for _name in ("_rsum_last_seq", "_rsum_first", "_rsum_mid"):
    _HELPERS[f"{_name}_neg"] = (
        _HELPERS[_name].replace(f"def {_name}(", f"def {_name}_neg(").replace("+= x[", "-= x[")
    )


_EXPM1_TERMS = [1.0 / math.factorial(n) for n in range(1, 14)]
# expm1(r) for |r| <= ln2 / 2 by its Taylor series to r**13 (the next term is under 2**-56 of
# the sum), evaluated from the highest power down
_EXPM1_POLY = "r * (" + " + r * (".join(map(repr, _EXPM1_TERMS)) + ")" * len(_EXPM1_TERMS)
# x - k ln2 with ln 2 in two parts, the first with the low 32 bits of its mantissa zero, so that
# k * ln2_hi is exact for |k| < 2**21
_REDUCE = f"""k = int(math.floor(c * {1 / math.log(2)!r} + 0.5))
    r = (c - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    p = {_EXPM1_POLY}"""

# Elementwise functions in arithmetic LLVM vectorises: Numba calls the C library's once per
# element (tanh 7.5 ns, exp 2.9 ns; these: about 1 ns), and NumPy's vectorised loops cost a
# call into object mode.  Each is within 2 ulp of the true value (NumPy's loops: 1); NaN stays
# NaN, the sign of a zero is kept.
#
# exp(x) = 2**k (1 + expm1(r)), r = x - k ln2; 2**k as two factors built from their exponent
# bits, so that results below the smallest normal number (x < -708.4) round once into the
# subnormals and those above the largest overflow to inf; x is clipped to [-746, 710] first.
_HELPERS["_exp64"] = f"""
def _exp64(x):
    c = x if x > -746.0 else -746.0
    c = c if c < 710.0 else 710.0
    {_REDUCE}
    h = k >> 1
    s1 = numpy.int64((h + 1023) << 52).view(numpy.float64)
    s2 = numpy.int64((k - h + 1023) << 52).view(numpy.float64)
    e = (1.0 + p) * s1 * s2
    return e if x == x else x
"""
# tanh |x| = e / (e + 2) with e = expm1(2 |x|) = 2**k (expm1(r) + 1) - 1 (2 |x| clipped at 40,
# where tanh is 1.0 to the bit already, from 19.06); the sign copied from x
_HELPERS["_tanh64"] = f"""
def _tanh64(x):
    a = abs(x)
    c = 2.0 * a if a <= 20.0 else 40.0
    {_REDUCE}
    s = float(1 << k)
    e = s * p + (s - 1.0)
    t = math.copysign(e / (e + 2.0), x)
    return t if a == a else x
"""
# ... and of an array, any float dtype (float32 in float64, rounded once where it is stored)
for _f in ("exp", "tanh"):
    _HELPERS[f"_{_f}_array"] = f"""
def _{_f}_array(x):
    out = numpy.empty(x.shape, x.dtype)
    xf, of = x.ravel(), out.ravel()
    for i in range(of.size):
        of[i] = _{_f}64(numpy.float64(xf[i]))
    return out
"""
VECTORISED = frozenset(["exp", "tanh"])
_SCALAR = frozenset(f"_{f}64" for f in VECTORISED)
