"""course_utils: the small shared package behind the "Inside CLIP" notebooks.

One module per idea, named after the notebook heading that introduces it:
env (mode, device, seeds, banner) · assets (downloads with checksums) · models (load_clip, model_info)
· data (CIFAR-100) · by_hand (reference transformer pieces for notebook 01) · checks (exercise checkers)
· plots (annotated matrices) · colab (the one place the repository URL lives) · exercises and preflight
(command-line tools behind `make exercises` and `make run`).
"""

__version__ = "0.1.0"

import warnings

# openai-clip 1.0.1 imports pkg_resources, which prints a deprecation warning on every first `import clip`.
# It is noise for learners (the pin setuptools<81 keeps it working), so hide that one message only.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
