"""A node's self-test through the acoustic model: play our own frame, hear it, measure it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_sim import calibration as cal
from firmware_sim.acoustics import REFERENCE_PHONE_MIC, Emission, MicResponse, Room, Still, render
from firmware_sim.acoustics.room import Point
from firmware_sim.device import SelfTestResult
from firmware_sim.noise import NoiseScene, store_scene

SAMPLE_RATE = 48_000
# A node's microphone sits beside its speaker, a few centimetres apart on the board;
# 0.3 m stands for the short path around the enclosure.
OWN_MIC_OFFSET_M = (0.3, 0.0, 0.0)
# Silence before and after the frame so the detector sees the whole of it.
PAD_S = 0.2


@dataclass
class AcousticSelfTester:
    """Self-test of a node at ``position``: our frame -> room -> our mic -> real detector.

    ``listen_at`` defaults to the node's own microphone; set it to a neighbour node's
    position for the "a neighbour hears me" variant.
    """

    room: Room
    position: Point
    listen_at: Point | None = None
    scene: NoiseScene = field(default_factory=lambda: store_scene(cal.DEFAULT_NOISE_FLOOR_DB_SPL))
    mic: MicResponse = REFERENCE_PHONE_MIC
    seed: int = 0

    def __call__(self, code: int, level_dbfs: float) -> SelfTestResult:
        """Emit ``code`` at ``level_dbfs``; report what was heard and at what level."""
        from edge.modem import frame
        from edge.modem.detector import StreamingDetector
        from edge.modem.synth import synthesize_frame

        rng = np.random.default_rng(self.seed)
        self.seed += 1
        mic_at = self.listen_at or tuple(
            p + o for p, o in zip(self.position, OWN_MIC_OFFSET_M, strict=True)
        )
        samples = synthesize_frame(code, SAMPLE_RATE, level_dbfs).astype(float)
        emission = Emission(self.position, PAD_S, samples * cal.emitter_to_mic_gain())
        n = int((2 * PAD_S + frame.FRAME_DURATION_S) * SAMPLE_RATE)
        heard = render(self.room, [emission], Still(mic_at), 0.0, n, SAMPLE_RATE)  # type: ignore[arg-type]
        audio = self.mic.apply(heard + self.scene.render(n, SAMPLE_RATE, rng), SAMPLE_RATE)
        lo = int(PAD_S * SAMPLE_RATE)
        level = cal.band_level_dbfs(audio[lo : lo + samples.size], SAMPLE_RATE)
        detector = StreamingDetector(SAMPLE_RATE)
        found = detector.feed(audio.astype(np.float32)) + detector.flush()
        mine = [d for d in found if d.payload == code]
        if not mine:
            return SelfTestResult(False, None, round(level, 1), None, "own frame not decoded")
        best = max(mine, key=lambda d: d.snr_db)
        return SelfTestResult(True, code, round(level, 1), round(best.snr_db, 1), "heard itself")
