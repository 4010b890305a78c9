"""kernels_check: can this machine run a recipe, and are the kernels right? (`slothlab check`)

    device.py     the device report (torch, CUDA, GPU, versions, unsloth importability, backend)
    numerics.py   Unsloth's fused kernels against PyTorch, in a child process
    fit.py        the VRAM estimator (no torch import: the TUI uses it)
    compare.py    one training step through each backend (GPU)
    published.py  the estimator against published peak-memory figures
    cli.py        `slothlab check` / `python -m kernels_check`
"""
