"""Record episodes as GIF or MP4: ``roadsense-marl record MODEL|--policy NAME --out episode.gif``.

Every frame is the env's annotated ``rgb_array`` frame (see :mod:`roadsense_marl.env.render`)
under a caption naming the policy, radio and seed: one frame after ``reset`` and one after
every step, played in real time (one frame per ``step_length``: 10 fps with 0.1 s steps)
unless ``--fps`` says otherwise. Encoding uses imageio (GIF through Pillow,
MP4 as H.264 through the ffmpeg binary that imageio-ffmpeg ships).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

VIDEO_FORMATS = (".gif", ".mp4")
CAPTION_PX = 20


class EpisodeRecorder:
    """A transparent view of an env that renders a frame after ``reset`` and after every ``step``.

    Everything else is the wrapped env's own (attributes are forwarded), so
    :func:`~roadsense_marl.evaluation.runner.run_episode` and the policies run unchanged and the
    episode is the same as without recording (rendering only reads the state). The env must have
    ``render_mode="rgb_array"``.

    :param caption: text above every frame (policy, radio, seed), or "" for none.
    :raises ValueError: the env does not render ``rgb_array`` frames.
    """

    def __init__(self, env: Any, caption: str = "") -> None:
        if getattr(env, "render_mode", None) != "rgb_array":
            raise ValueError(
                f"recording needs an env built with render_mode='rgb_array', got {getattr(env, 'render_mode', None)!r}"
            )
        self.__dict__["_env"] = env
        self.__dict__["caption"] = caption
        self.__dict__["frames"] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._env, name, value)

    def _capture(self) -> None:
        frame = self._env.render()
        self.frames.append(add_caption(frame, self.caption) if self.caption else frame)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        out = self._env.reset(*args, **kwargs)
        self.frames.clear()
        self._capture()
        return out

    def step(self, actions: Any) -> Any:
        out = self._env.step(actions)
        self._capture()
        return out


def add_caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` (uint8[h, w, 3]) with a ``CAPTION_PX``-high dark strip holding ``text`` on top."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = frame.shape[:2]
    img = Image.new("RGB", (w, h + CAPTION_PX), (30, 30, 30))
    img.paste(Image.fromarray(frame), (0, CAPTION_PX))
    ImageDraw.Draw(img).text((6, 3), text, fill=(255, 255, 255), font=ImageFont.load_default(12))
    return np.asarray(img)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Encode ``frames`` (uint8[h, w, 3] each, all the same size) to ``path`` (.gif or .mp4).

    GIFs loop forever; MP4 is H.264 (yuv420p, so players and browsers show it), which needs an
    even width and height (odd sizes get one row/column of padding).

    :raises ValueError: no frames, frames of different sizes, a suffix other than .gif/.mp4, or fps <= 0.
    """
    import imageio.v2 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"video file must end in {' or '.join(VIDEO_FORMATS)}, got {str(path)!r}")
    if not frames:
        raise ValueError("no frames to write")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    shape = frames[0].shape
    bad = next((i for i, f in enumerate(frames) if f.shape != shape), None)
    if bad is not None:
        raise ValueError(f"frame {bad} has shape {frames[bad].shape}, frame 0 has {shape}: all must match")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        # Pillow's GIF writer takes the frame duration in milliseconds.
        iio.mimwrite(path, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
    else:
        h, w = shape[:2]
        pad = ((0, h % 2), (0, w % 2), (0, 0))
        with iio.get_writer(
            path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=1, quality=7, ffmpeg_log_level="error",
        ) as writer:
            for f in frames:
                writer.append_data(np.pad(f, pad, mode="edge") if any(p[1] for p in pad) else f)
    return path


def real_time_fps(env: Any) -> float:
    """Frames per second that play one env step per ``step_length`` seconds (10 for 0.1 s steps)."""
    return 1.0 / float(env.step_length)


def record_episodes(
    env: Any,
    policy: Any,
    seeds: Sequence[int],
    out: str | Path,
    *,
    fps: float | None = None,
    label: str = "",
) -> list[tuple[Path, int, dict[str, Any]]]:
    """Run one episode per seed with ``policy`` and write each as a video.

    With one seed the video goes to ``out``; with several to ``<stem>_seed<seed><suffix>`` beside it.

    :returns: per episode ``(video path, frame count, episode metrics)`` (metrics as
        :func:`~roadsense_marl.evaluation.metrics.episode_metrics`).
    """
    from roadsense_marl.evaluation.metrics import episode_metrics
    from roadsense_marl.evaluation.runner import run_episode

    out = Path(out)
    if out.suffix.lower() not in VIDEO_FORMATS:
        raise ValueError(f"--out must end in {' or '.join(VIDEO_FORMATS)}, got {str(out)!r}")
    fps = float(fps if fps is not None else real_time_fps(env))
    written = []
    for seed in seeds:
        rec = EpisodeRecorder(env, caption=f"{label}   seed {seed}".strip())
        record = run_episode(rec, policy, int(seed))
        path = out if len(seeds) == 1 else out.with_name(f"{out.stem}_seed{seed}{out.suffix}")
        write_video(rec.frames, path, fps)
        written.append((path, len(rec.frames), episode_metrics(record)))
    return written


# ---- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``roadsense-marl record``."""
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", default=None,
        help="SB3 PPO .zip saved by training, a training run folder (uses final_model.zip and its env config), "
        "a policy folder written by `roadsense-marl export`, or 'pretrained' (the policy shipped with the package)",
    )
    parser.add_argument(
        "--policy", choices=("model", "no-v2v", "rule-v2v"), default=None,
        help="what drives: the MODEL (default when MODEL is given) or a baseline needing no model",
    )
    parser.add_argument("--out", required=True, help="video file to write: episode.gif or episode.mp4")
    parser.add_argument("--scenario", default=None, help="scenario name or .sumocfg path (default: convoy_6 or the run's)")
    parser.add_argument("--seed", type=int, default=1000, help="episode seed (default 1000, evaluate's first seed)")
    parser.add_argument(
        "--episodes", type=int, default=1,
        help="episodes to record on seeds seed, seed+1, ...; more than one writes OUT_seed<seed>.gif|.mp4 (default 1)",
    )
    parser.add_argument("--fps", type=float, default=None, help="frames per second (default: real time, 1/step_length: 10 for 0.1 s steps)")
    parser.add_argument(
        "--radio", default=None, metavar="measured|ideal|degraded|PATH",
        help="radio profile or ESP-NOW parameter file (default: the env config's, measured)",
    )
    parser.add_argument("--max-steps", type=int, default=None, help="episode length limit in steps (default 500)")
    parser.add_argument("--backend", choices=("libsumo", "traci"), default=None, help="SUMO backend (default libsumo)")
    parser.add_argument("--config", default=None, help="env YAML config (a path or a name in configs/env/)")


def run(args: argparse.Namespace) -> int:
    """Record; user mistakes raise ValueError/FileNotFoundError before SUMO starts (printed as one line)."""
    if Path(args.out).suffix.lower() not in VIDEO_FORMATS:
        raise ValueError(f"--out must end in {' or '.join(VIDEO_FORMATS)}, got {args.out!r}")
    from roadsense_marl.training.runs import check_writable_dir

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {args.out!r} is a folder; give a file name ending in {' or '.join(VIDEO_FORMATS)}")
    check_writable_dir(out.parent, what=f"--out {args.out!r}: its folder")  # before any episode runs
    if args.model is not None and args.policy in ("no-v2v", "rule-v2v"):
        raise ValueError(f"--policy {args.policy} runs without a model; drop MODEL {args.model!r} or use --policy model")
    policy = args.policy or ("model" if args.model is not None else None)
    if policy is None:
        raise ValueError("nothing to record: give a MODEL path or --policy no-v2v|rule-v2v")
    if policy == "model" and args.model is None:
        raise ValueError("--policy model needs a MODEL path (an SB3 .zip or a training run folder)")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")

    from roadsense_marl.env.config import make_env_config
    from roadsense_marl.env.convoy_env import RoadSenseParallelEnv
    from roadsense_marl.evaluation.baselines import make_baseline
    from roadsense_marl.evaluation.runner import _radio_label, _torch_threads, load_model_policy, resolve_model

    model_path, run_env_cfg = None, None
    if policy == "model":
        model_path, run_env_cfg, _ = resolve_model(args.model)
    overrides: dict[str, Any] = {"render_mode": "rgb_array"}
    for key, val in (("scenario", args.scenario), ("backend", args.backend), ("max_steps", args.max_steps),
                     ("radio", args.radio)):
        if val is not None:
            overrides[key] = val
    cfg = make_env_config(args.config if args.config is not None else run_env_cfg, **overrides)
    env = RoadSenseParallelEnv(config=cfg)
    try:
        pol = load_model_policy(model_path, env) if policy == "model" else make_baseline(policy)
        name = (args.model if args.model == "pretrained" else Path(model_path).stem) if policy == "model" else policy
        label = f"{name}   {cfg.scenario}   {_radio_label(cfg.radio)} radio"
        seeds = [args.seed + i for i in range(args.episodes)]
        with _torch_threads(1 if policy == "model" else None):
            written = record_episodes(env, pol, seeds, args.out, fps=args.fps, label=label)
    finally:
        env.close()
    for path, n_frames, m in written:
        crashed = f"{m['crashes']} crash(es)" if m["collision"] else "no collision"
        print(f"{path}: {n_frames} frames, seed {m['seed']}, {m['steps']} steps, {crashed}, "
              f"mean speed {m['mean_speed_mps']:.1f} m/s")
    return 0
