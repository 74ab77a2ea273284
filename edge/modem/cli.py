"""``storewave encode`` / ``storewave decode``: payloads to WAV files and back.

Exit codes: 0 = done (including "no frames found", which is an answer, not an error);
2 = bad input (payload, WAV file, sample rate, level), with the reason on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from edge.modem import codes, frame
from edge.modem.wav import WavError, read_wav, write_wav

EXIT_BAD_INPUT = 2
DEFAULT_RATE = 48_000
# -6 dBFS peak leaves headroom for a speaker amplifier and matches the emitter default.
DEFAULT_LEVEL_DBFS = -6.0
# Silence around the frame so a decoder sees a clean start and end.
PAD_S = 0.1
# Feed the decoder in blocks of this many samples, as the edge agent does.
DECODE_BLOCK = 4096


def _fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr and return the bad-input exit."""
    typer.secho(message, fg="red", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def encode_command(
    payload_hex: str = typer.Argument(..., help="48-bit payload as 12 hex digits."),
    output: Path = typer.Option(..., "-o", "--output", help="WAV file to write."),
    rate: int = typer.Option(DEFAULT_RATE, "--rate", help="Sample rate: 44100 or 48000."),
    level: float = typer.Option(DEFAULT_LEVEL_DBFS, "--level", help="Peak level in dBFS (<= 0)."),
) -> None:
    """Write one modem frame carrying PAYLOAD_HEX to a 32-bit float mono WAV."""
    from edge.modem.synth import synthesize_frame

    try:
        payload = codes.from_hex(payload_hex)
        wave = synthesize_frame(payload, rate, level)
    except ValueError as exc:
        raise _fail(f"encode: {exc}") from None
    pad = np.zeros(int(PAD_S * rate), dtype=np.float32)
    try:
        write_wav(output, np.concatenate([pad, wave, pad]), rate)
    except (OSError, WavError) as exc:
        raise _fail(f"encode: cannot write {output}: {exc}") from None
    typer.echo(f"wrote {output}: payload {codes.to_hex(payload)}, {rate} Hz, {level:g} dBFS peak")


def decode_command(
    wav_path: Path = typer.Argument(..., help="WAV file to decode (44.1 or 48 kHz, mono)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per frame per line."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of a multi-channel file."),
    min_snr_db: float | None = typer.Option(None, "--min-snr", help="Drop frames below this SNR."),
) -> None:
    """Decode every modem frame in a WAV file."""
    from edge.modem.detector import StreamingDetector

    try:
        samples, rate = read_wav(wav_path, channel=channel)
        frame.check_rate(rate)
    except ValueError as exc:
        raise _fail(f"decode: {exc}") from None
    detector = StreamingDetector(rate, min_snr_db=min_snr_db)
    found = []
    for lo in range(0, samples.shape[0], DECODE_BLOCK):
        found.extend(detector.feed(samples[lo : lo + DECODE_BLOCK]))
    found.extend(detector.flush())
    for det in found:
        if as_json:
            typer.echo(json.dumps({
                "payload": codes.to_hex(det.payload),
                "t": round(det.t_s, 4),
                "snr_db": round(det.snr_db, 1),
                "confidence": round(det.confidence, 3),
            }))
        else:
            typer.echo(
                f"{codes.to_hex(det.payload)}  t={det.t_s:.3f}s  snr={det.snr_db:.1f}dB  "
                f"confidence={det.confidence:.2f}"
            )
    if not found:
        typer.echo(f"no frames found in {wav_path} ({samples.shape[0] / rate:.2f} s)", err=True)
