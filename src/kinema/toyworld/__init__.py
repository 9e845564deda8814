"""The toy world: procedural moving-shape videos with ground truth, and the adherence judge.

    from kinema.toyworld.render import render_samples
    sample = render_samples(1, seed=0)[0]       # video (17, 64, 64, 3) uint8, truth, caption, prompt
    from kinema.toyworld.judge import judge
    judge(sample.video, sample.truth).scores()  # {"color": True, "shape": True, "motion": True, "camera": True}

Modules: `scene` (vocabulary, held-out combinations, ground truth, sampling, camera paths),
`render` (vectorised drawing), `captions` (structured captions, prompt parsing), `judge`,
`adherence` (evaluate any `generate(prompt, seed)`; a pipeline's (steps, shift) sweep), `sensitivity`
(the DiT's loss per prompt word), `report` (the evaluation reports, written atomically), `dataset`
(mp4 files + manifest), `cli` (`kinema toyworld render`) and `eval_cli` (`kinema eval`).

Conventions: objects move in screen coordinates ("moves to the right" = right in the frame), the camera
moves only the background, and camera names describe the camera ("pan left": content moves right).
"""
