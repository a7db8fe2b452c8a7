"""Minifloats and MX blocks against ml_dtypes, gfloat and the Fraction oracles of bitsim.reference.mx."""

from fractions import Fraction

import numpy as np
import pytest

import gfloat
import ml_dtypes
from gfloat import formats as gf

from bitsim.errors import InputError, InputTypeError, RangeError
from bitsim.formats import minifloat as mf
from bitsim.formats import mx, nvfp4, subbyte_packing as sp
from bitsim.formats.modes import Counts
from bitsim.formats.rng import Philox
from bitsim.kernels import mx as kmx
from bitsim.reference import mx as ref
from mx_support import OneDraw

ML = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m3": ml_dtypes.float6_e2m3fn,
      "e3m2": ml_dtypes.float6_e3m2fn, "e2m1": ml_dtypes.float4_e2m1fn, "e8m0": ml_dtypes.float8_e8m0fnu}
GF = {"e4m3": gf.format_info_ocp_e4m3, "e5m2": gf.format_info_ocp_e5m2, "e2m3": gf.format_info_ocp_e2m3,
      "e3m2": gf.format_info_ocp_e3m2, "e2m1": gf.format_info_ocp_e2m1, "e8m0": gf.format_info_ocp_e8m0}
MODES = ("nearest_even", "nearest_away", "nearest_up", "toward_zero", "floor", "ceil", "stochastic")


@pytest.mark.parametrize("name", ML)
def test_every_code_decodes_as_ml_dtypes_and_gfloat(name):
    fmt = mf.parse_minifloat(name)
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    ours = mf.decode(codes, fmt)
    assert np.array_equal(ours, codes.view(ML[name]).astype(np.float64), equal_nan=True)
    theirs = np.array([gfloat.decode_float(GF[name], int(c)).fval for c in codes])
    assert np.array_equal(ours, theirs, equal_nan=True)
    oracle = np.array([float(ref.decode_one(int(c), fmt)) for c in codes])
    assert np.array_equal(ours, oracle, equal_nan=True)


@pytest.mark.parametrize("name", ["e4m3", "e5m2", "e8m0", "int8"])
def test_all_code_pairs_multiply_exactly(name):
    """All 65,536 products of two codes: the float64 product of the decoded values (what the kernels use) equals
    the exact product of the oracle's values, Python ints scaled by 2**-q; NaN and Inf codes as IEEE says."""
    if name == "int8":
        exact = [Fraction(int(c), 64) for c in np.arange(256).astype(np.uint8).view(np.int8)]
        v, q = np.array([float(f) for f in exact]), 6
    else:
        fmt = mf.parse_minifloat(name)
        v, q = mf.values(fmt), fmt.bias + fmt.man_bits
        exact = [ref.decode_one(c, fmt) for c in range(256)]
    finite = np.array([not isinstance(f, float) for f in exact])
    ints = np.array([int(f * 2**q) for f, ok in zip(exact, finite) if ok], dtype=object)
    assert all(n == f * 2**q for n, f in zip(ints, [f for f, ok in zip(exact, finite) if ok]))
    with np.errstate(invalid="ignore"):  # Inf x 0 is NaN, as checked below
        prod = np.multiply.outer(v, v)
    scaled = np.ldexp(prod[np.ix_(finite, finite)], 2 * q).astype(object)
    assert (scaled == np.multiply.outer(ints, ints)).all()  # int == float compares exactly in Python
    if not finite.all():
        with np.errstate(invalid="ignore"):
            ieee = np.multiply.outer(np.array([float(f) for f in exact]), np.array([float(f) for f in exact]))
        odd = ~np.multiply.outer(finite, finite)
        assert np.array_equal(prod[odd], ieee[odd], equal_nan=True)
    if name in ("e4m3", "e5m2"):
        ints_k, qk, bad = kmx.element_integers(fmt)
        ok = ~bad
        assert np.array_equal(np.multiply.outer(ints_k[ok], ints_k[ok]), np.ldexp(prod[np.ix_(ok, ok)], 2 * qk))


def boundaries(fmt):
    """Every representable magnitude and every midpoint (with the one beyond the range), +-, and one float32
    ulp either side, as float32."""
    mags = [float(v) for v, _ in ref.finite_magnitudes(fmt)]
    pts = mags + [(a + b) / 2 for a, b in zip(mags, mags[1:])]
    with np.errstate(over="ignore"):  # E8M0's next value, 2**128, is beyond float32 and left out
        pts = np.array(pts, np.float32)
    pts = pts[np.isfinite(pts)]
    around = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(0))])
    return np.concatenate([around, -around, np.array([np.inf, -np.inf], np.float32)])


@pytest.mark.parametrize("name", ML)
def test_encode_on_every_boundary_matches_ml_dtypes(name):
    fmt = mf.parse_minifloat(name)
    x = boundaries(fmt)
    if name == "e8m0":
        x = x[x > 0]  # ml_dtypes rounds E8M0 ties up: bitsim's nearest_away on positive values
        ours = mf.encode(x, fmt, "nearest_away", "nonfinite")
    else:
        if fmt.nans:  # NaN payloads of both signs: ml_dtypes writes the quiet NaN, as bitsim does
            nans = np.array([0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x7FA00000], np.uint32)
            x = np.concatenate([x, np.concatenate([nans, nans | np.uint32(1 << 31)]).view(np.float32)])
        ours = mf.encode(x, fmt, "nearest_even", "nonfinite" if fmt.nans else "saturate")
    with np.errstate(all="ignore"):
        theirs = x.astype(ML[name]).view(np.uint8)
    assert np.array_equal(ours, theirs)


# the six named formats and two ExMy: IEEE-like E3M4, and a FloatQuant-style format without subnormals or Inf
ORACLE_FORMATS = {**{name: mf.parse_minifloat(name) for name in ML}, "e3m4": mf.parse_minifloat("e3m4"),
                  "e4m2_b5_nosub": mf.MinifloatFormat(4, 2, bias=5, subnormals=False, nans=True)}


@pytest.mark.parametrize("name", ORACLE_FORMATS)
@pytest.mark.parametrize("mode", MODES)
def test_encode_on_every_boundary_matches_the_oracle(name, mode):
    fmt = ORACLE_FORMATS[name]
    x = boundaries(fmt)
    for overflow in ("saturate", "nonfinite", "error"):
        if overflow == "nonfinite" and not fmt.nans:
            continue
        u = Philox(5).uint32(x.size)
        expected = [ref.encode_one(float(v), fmt, mode, overflow, int(ui)) for v, ui in zip(x, u)]
        if "error" in expected:
            with pytest.raises(OverflowError):
                mf.encode(x, fmt, mode, overflow, rng=Philox(5))
            keep = np.array([e != "error" for e in expected])
            x, u = x[keep], u[keep]
            expected = [e for e in expected if e != "error"]
            ours = [int(mf.encode(np.array([v]), fmt, mode, overflow, rng=None if mode != "stochastic" else
                                  OneDraw(int(ui)))[0]) for v, ui in zip(x, u)]
        else:
            ours = mf.encode(x, fmt, mode, overflow, rng=Philox(5)).tolist()
        assert ours == expected, (name, mode, overflow)


GF_MODES = {"toward_zero": gfloat.RoundMode.TowardZero, "ceil": gfloat.RoundMode.TowardPositive,
            "floor": gfloat.RoundMode.TowardNegative, "nearest_even": gfloat.RoundMode.TiesToEven,
            "nearest_away": gfloat.RoundMode.TiesToAway}


@pytest.mark.parametrize("name", ML)
@pytest.mark.parametrize("mode", GF_MODES)
def test_encode_on_every_boundary_matches_gfloat(name, mode):
    """gfloat's round_ndarray + encode_ndarray, saturating or not, on the same boundary points. Where gfloat
    gives NaN, bitsim gives a NaN code of the input's sign (gfloat always writes the negative one); E8M0 inputs
    below 2**-127 are left out (gfloat has no code for what they round to; bitsim gives 2**-127)."""
    fmt = mf.parse_minifloat(name)
    x = boundaries(fmt).astype(np.float64)
    if name == "e8m0":
        x = x[x >= 2.0**-127]
    for overflow in ("saturate", "nonfinite") if fmt.nans else ("saturate",):
        with np.errstate(all="ignore"):
            r = gfloat.round_ndarray(GF[name], x, GF_MODES[mode], overflow == "saturate")
            theirs = gfloat.encode_ndarray(GF[name], r)
        ours = mf.encode(x, fmt, mode, overflow)
        nan = np.isnan(r)
        assert np.array_equal(ours[~nan], theirs[~nan]), (mode, overflow)
        assert np.isnan(mf.decode(ours[nan], fmt)).all()


def test_encode_counts_and_errors():
    c = Counts()
    assert int(mf.encode(1000.0, "e4m3", counts=c)) == 0x7E and c.saturated == 1
    assert int(mf.encode(465.0, "e4m3", overflow="nonfinite")) == 0x7F
    assert int(mf.encode(464.0, "e4m3", overflow="nonfinite")) == 0x7E  # the tie goes to the even code 448
    assert int(mf.encode(61440.0, "e5m2", overflow="nonfinite")) == 0x7C  # +Inf
    assert int(mf.encode(1e9, "e5m2", "toward_zero", "nonfinite")) == 0x7B  # IEEE: toward zero stays finite
    mf.encode(2.0**-12, "e4m3", counts=c)
    assert c.flushed == 1
    with pytest.raises(ValueError):
        mf.encode(np.nan, "e2m1")
    with pytest.raises(OverflowError):
        mf.encode(7.0, "e2m1", overflow="error")


MXGF = {"mxfp8_e4m3": gf.format_info_mxfp8_e4m3, "mxfp8_e5m2": gf.format_info_mxfp8_e5m2,
        "mxfp6_e2m3": gf.format_info_mxfp6_e2m3, "mxfp6_e3m2": gf.format_info_mxfp6_e3m2,
        "mxfp4_e2m1": gf.format_info_mxfp4_e2m1, "mxint8": gf.format_info_mxint8}


@pytest.mark.parametrize("name", MXGF)
def test_mx_quantization_matches_gfloat_under_the_ocp_rule(name):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((60, 32)) * 2.0 ** rng.integers(-40, 40, (60, 1))).astype(np.float32).astype(float)
    x[0] = 0
    x[1, :5] = 0
    x[2] = 6.0
    ours = mx.quantize(x, name, axis=1).dequantize()
    theirs = np.stack([gfloat.quantize_block(MXGF[name], row, gfloat.compute_scale_amax) for row in x])
    assert np.array_equal(ours, theirs)


def gfloat_codes(name, x):
    """gfloat's OCP block: ``compute_scale_amax``, then ``encode_block`` of ``x / scale``: (scale, element codes)."""
    fi = MXGF[name]
    scale = gfloat.compute_scale_amax(fi.etype.emax, x)
    codes = list(gfloat.encode_block(fi, scale, x / scale))
    return codes[0], codes[1:]


@pytest.mark.parametrize("name", MXGF)
def test_mx_codes_and_scales_match_gfloat_encode_block(name):
    """Codes, not only values: random blocks across float32's range, all-zero and signed-zero blocks, blocks whose
    amax is a power of two or saturates, and blocks whose exponent is clipped at either end of E8M0."""
    rng = np.random.default_rng(8)
    el = mx.FORMATS[name].element
    rows = list((rng.standard_normal((40, 32)) * 2.0 ** rng.integers(-120, 110, (40, 1))).astype(np.float32))
    rows += [np.zeros(32), np.array([-0.0, 0.0] * 16), np.full(32, 2.0 ** (el.emax + 1) * 0.999),
             np.linspace(-el.max, el.max, 32) * 2.0**5, np.full(32, 2.0**-140), np.full(32, 3e38),
             np.array([2.0**-149] + [0.0] * 31)]
    for row in rows:
        row = np.asarray(row, np.float64)
        t = mx.quantize(row, name)
        assert (int(t.scales[0]), t.codes.tolist()) == gfloat_codes(name, row), row[:4]


def test_nan_and_inf_blocks_where_gfloat_differs():
    """A NaN block decodes to NaN in both. A block holding Inf: gfloat clips the scale to 2**127 and saturates the
    Inf element; bitsim's written rule (docs/formats.md, 14.1) gives the NaN scale, so the block decodes to NaN."""
    nan_block = np.array([1.0, np.nan] + [0.5] * 30)
    with np.errstate(all="ignore"):
        theirs = gfloat.quantize_block(MXGF["mxfp8_e4m3"], nan_block, gfloat.compute_scale_amax)
    assert np.isnan(theirs[1]) and np.isnan(mx.quantize(nan_block, "mxfp8_e4m3").dequantize()).all()
    inf_block = np.array([1.0, np.inf] + [0.5] * 30)
    with np.errstate(all="ignore"):
        scale, codes = gfloat_codes("mxfp8_e4m3", inf_block)
    assert scale == 254 and codes[1] == 0x7E  # 2**127 and 448: the Inf saturated
    t = mx.quantize(inf_block, "mxfp8_e4m3")
    assert t.scales.tolist() == [0xFF] and np.isnan(t.dequantize()).all()


@pytest.mark.parametrize("name", MXGF)
@pytest.mark.parametrize("rule", ["floor", "ceil", "rceil", "even", "ceil_log2"])
def test_mx_quantization_matches_the_oracle_for_every_scale_rule(name, rule):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 32)) * 2.0 ** rng.integers(-6, 6, (8, 32))
    x[0, 3] = np.nan
    x[1] = 0
    x[2, 0] = 1e300
    t = mx.quantize(x, name, axis=1, scale_rule=rule)
    for row, codes, scale in zip(x, t.codes, t.scales[:, 0]):
        s, c = ref.mx_quantize_block(row.tolist(), mx.FORMATS[name].element, rule)
        assert (int(scale), codes.tolist()) == (s, c)


def test_rceil_reproduces_cublas_scales_as_gfloat_computes_them():
    """RCEIL: 2**ceil(log2(fl32(amax / max_elem))), here by gfloat's round-toward-positive to E8M0."""
    rng = np.random.default_rng(5)
    amax = np.abs(rng.standard_normal(5000) * 2.0 ** rng.integers(-20, 20, 5000)).astype(np.float32)
    for name in ("mxfp8_e4m3", "mxfp4_e2m1"):
        el = mx.FORMATS[name].element
        d = (amax / np.float32(el.max)).astype(np.float64)
        theirs = gfloat.round_ndarray(gf.format_info_ocp_e8m0, d, gfloat.RoundMode.TowardPositive)
        assert np.array_equal(np.ldexp(1.0, mx.shared_exponent(amax, name, "rceil")), theirs)
    # and where it differs from CEIL: fl32(amax) rounds down onto 448, so d = 1 and e = 0, where CEIL needs 1
    amax = 448 * (1 + 2.0**-30)
    assert np.float32(amax) == 448.0
    assert ref.shared_exponent_one(Fraction(amax), mx.FORMATS["mxfp8_e4m3"].element, "rceil") == 0
    assert mx.shared_exponent(amax, "mxfp8_e4m3", "rceil") == 0
    assert mx.shared_exponent(amax, "mxfp8_e4m3", "ceil") == 1
    assert mx.shared_exponent(np.float32(448) * np.float32(1 + 2.0**-23), "mxfp8_e4m3", "rceil") == 1


def test_worked_block_of_the_docs():
    t = mx.quantize([0.3, 1.7, -5.0, 12.0], "mxfp4_e2m1")
    assert t.scales.tolist() == [128] and t.codes.tolist() == [0x0, 0x2, 0xC, 0x7]
    assert t.dequantize().tolist() == [0.0, 2.0, -4.0, 12.0]
    assert mx.quantize([0.3, 1.7, -5.0, 12.0], "mxfp4_e2m1", scale_rule="ceil").scales.tolist() == [128]
    assert mx.quantize([0.3, 1.7, -5.0, 13.0], "mxfp4_e2m1").scales.tolist() == [128]  # 13 saturates to 12
    assert mx.quantize([0.3, 1.7, -5.0, 13.0], "mxfp4_e2m1", scale_rule="ceil").scales.tolist() == [129]


def test_special_blocks():
    t = mx.quantize([1.0, np.nan] + [0.0] * 30 + [0.0] * 32, "mxfp8_e4m3")
    assert t.scales.tolist() == [0xFF, 0x00] and np.isnan(t.dequantize()[:32]).all()
    c = Counts()
    t = mx.quantize([1e300, 1.0], "mxfp4_e2m1", counts=c)
    assert t.scales.tolist() == [254] and c.saturated >= 1


def test_nvfp4_and_packing():
    x = np.random.default_rng(0).standard_normal((4, 48)).astype(np.float32)
    t = nvfp4.quantize(x)
    assert t.scales.shape == (4, 3) and t.tensor_scale == np.float32(np.abs(x).max() / np.float32(2688))
    err = np.abs(t.dequantize() - x)
    assert (err <= np.abs(x).max() / 4).all()
    assert sp.pack_fp4(np.array([1, 2, 3], np.uint8)).tolist() == [0x21, 0x03]
    assert sp.pack_fp6(np.array([1, 2, 3, 4], np.uint8)).tolist() == [0x81, 0x30, 0x10]
    c = np.arange(64, dtype=np.uint8)
    assert np.array_equal(sp.unpack_fp6(sp.pack_fp6(c), 64), c)
    assert np.array_equal(sp.unpack_fp4(sp.pack_fp4(c[:16]), 16), c[:16])


def test_ml_dtypes_layout_converters():
    for name, dtype in ML.items():
        fmt = mf.parse_minifloat(name)
        codes = np.arange(1 << fmt.bits, dtype=np.uint8)
        a = sp.to_ml_dtypes(codes, name)
        assert a.dtype == dtype and np.array_equal(a.astype(np.float64), mf.decode(codes, fmt), equal_nan=True)
        back, element = sp.from_ml_dtypes(a)
        assert element == name and np.array_equal(back, codes)
    with pytest.raises(ValueError):
        sp.to_ml_dtypes(np.array([16], np.uint8), "e2m1")  # a 5-bit value is no E2M1 code
    with pytest.raises(TypeError):
        sp.from_ml_dtypes(np.zeros(3, np.float16))


def test_integers_beyond_2_53_are_refused_not_rounded_twice():
    big = 2**53 + 2**45 + 1  # float64 rounds it to the tie 2**53 + 2**45, which goes to the even code 0x5a00
    assert ref.encode_one(big, mf.parse_minifloat("e8m7")) == 0x5A01
    for call in (lambda x: mf.encode(x, "e8m7"), lambda x: mx.quantize(x, "mxfp8_e4m3"), nvfp4.quantize):
        for x in (np.array([big]), np.array([-big]), np.array([2**63], np.uint64)):
            with pytest.raises(InputError, match="beyond 2\\*\\*53"):
                call(x)
    edge = np.array([2**53, -(2**53), 3], np.int64)
    assert mf.encode(edge, "e8m7").tolist() == mf.encode(edge.astype(np.float64), "e8m7").tolist()


def test_nvfp4_tensor_scale_that_rounds_to_zero_becomes_the_smallest_subnormal():
    c = Counts()
    with np.errstate(divide="raise", invalid="raise"):
        t = nvfp4.quantize(np.array([1e-44] + [0.0] * 15), counts=c)  # the worked example of section 14.3
    assert t.tensor_scale == np.float32(2.0**-149) and t.scales.tolist() == [0x38]
    assert t.codes[:2].tolist() == [0x7, 0x0] and c.saturated == 1
    assert t.dequantize()[0] == 6 * 2.0**-149
    assert ref.nvfp4_quantize_row([1e-44] + [0.0] * 15) == (2.0**-149, [0x38], t.codes.tolist())


def test_nvfp4_rounds_float64_values_to_float32_first():
    rng = np.random.default_rng(3)
    for _ in range(40):
        x = rng.standard_normal(32) * 10
        t = nvfp4.quantize(x)
        same = nvfp4.quantize(x.astype(np.float32))
        assert (t.tensor_scale, t.scales.tolist(), t.codes.tolist()) == (same.tensor_scale, same.scales.tolist(),
                                                                         same.codes.tolist())
        assert ref.nvfp4_quantize_row(x.tolist()) == (float(t.tensor_scale), t.scales.tolist(), t.codes.tolist())


def test_nvfp4_refuses_bad_arguments_with_bitsim_errors():
    x = np.ones((2, 16))
    for block in (0, -4):
        with pytest.raises(InputError, match="block size must be >= 1"):
            nvfp4.quantize(x, block=block)
    with pytest.raises(InputTypeError):
        nvfp4.quantize(x, block=2.5)
    for axis in (2, 5, -3, -7):
        with pytest.raises(InputError, match="out of range"):
            nvfp4.quantize(x, axis=axis)
    assert nvfp4.quantize(x, axis=-2).axis == 0
    with np.errstate(over="raise", invalid="raise"):
        with pytest.raises(RangeError, match="float32's range"):
            nvfp4.quantize(np.array([1e300, 1.0]))
        with pytest.raises(InputError, match="no NaN or Inf"):
            nvfp4.quantize(np.array([np.inf, 1.0]))
    top = float(np.finfo(np.float32).max)
    assert nvfp4.quantize(np.array([top * (1 + 2.0**-25), 1.0])).tensor_scale == np.float32(top) / np.float32(2688)
    with pytest.raises(InputTypeError):
        nvfp4.quantize(np.array(["1"]))


def test_unpack_counts_are_checked():
    fp4, fp6 = sp.pack_fp4(np.array([1, 2], np.uint8)), sp.pack_fp6(np.array([1, 2, 3], np.uint8))
    for unpack, packed, top in ((sp.unpack_fp4, fp4, 2), (sp.unpack_fp6, fp6, 4)):
        for bad in ("4", 1.5, None):
            with pytest.raises(InputTypeError, match="count must be an int"):
                unpack(packed, bad)
        for bad in (-1, top + 1):
            with pytest.raises(InputError, match=f"count must be 0..{top}"):
                unpack(packed, bad)
        assert unpack(packed, np.int64(top)).size == top and unpack(packed, 0).size == 0
