"""``quanta demo``: the core's textbook check, then every registered medium's demo section."""

from __future__ import annotations

from collections.abc import Callable

from quanta.media import MEDIA
from quanta.reports import DemoSection


def core_section() -> DemoSection:
    """SNR of N-bit rounding of a sine, N = 2..16, with and without TPDF, against the law."""
    from quanta.core.sine import sine_snr_db

    rows = []
    for bits in range(2, 17):
        plain = sine_snr_db(bits)
        tpdf = sine_snr_db(bits, dither="tpdf")
        rows.append({"bits": bits, "law_db": plain["law_db"], "rounding_db": plain["snr_db"],
                     "tpdf_db": tpdf["snr_db"], "tpdf_expected_db": tpdf["expected_db"]})
    table = tuple((r["bits"], f"{r['law_db']:.2f}", f"{r['rounding_db']:.2f}",
                   f"{r['rounding_db'] - r['law_db']:+.2f}", f"{r['tpdf_db']:.2f}",
                   f"{r['tpdf_expected_db']:.2f}", f"{r['tpdf_db'] - r['tpdf_expected_db']:+.2f}")
                  for r in rows)
    return DemoSection(
        heading="core: SNR of a 997 Hz sine at 48 kHz rounded to N bits (2^18 samples, seed 0)",
        columns=("bits", "6.02N+1.76 dB", "rounding dB", "Δ vs law", "TPDF dB", "TPDF expected",
                 "Δ TPDF"),
        table=table,
        notes=("Rounding: AES17 full-scale sine (peaks on the outermost levels). TPDF: sine at "
               "1 − 1 LSB (no clipping); expected = signal power / (Δ²/12 + Δ²/6), 4.77 dB below "
               "plain rounding.",),
        data={"rows": rows})


def sections(*, skip: tuple[str, ...] = (), quick: bool = True) -> dict[str, Callable[[], DemoSection]]:
    """The demo's sections by name, each a callable that measures when called."""
    out: dict[str, Callable[[], DemoSection]] = {"core": core_section}
    for name, medium in MEDIA.items():
        if name not in skip:
            out[name] = lambda m=medium: m.module().demo(quick=quick)
    return out
