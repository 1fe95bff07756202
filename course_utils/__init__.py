"""course_utils: the small shared package behind the "Inside CLIP" notebooks.

One module per idea, named after the lesson that teaches it; imports only go down this list (a test checks it):

env             mode (real/offline), device, seeds, the banner, start_lesson                  every notebook's first cell
assets          the files the course may download: URL, SHA-256, cache, fetch                 notebook 03 (behind load_clip)
toyworld        drawn scenes of coloured shapes, with captions and masks                      notebook 02
models          ARCHITECTURES (openai ViTs, ToyCLIP), build, load_clip; the one `import clip` notebooks 02-04
data            CIFAR-100 or ToyShapes, superclasses, images -> model input                   notebooks 02-03
rehearsal       a stand-in real-mode cache: random weights as openai ships them, synthetic CIFAR-100CI, instructors
by_hand         reference transformer pieces                                                  notebook 01
plots           annotated matrices                                                            notebooks 01-02
diagrams        the course's own drawings: transformer block, dual encoder, decomposition, LeGrad notebooks 01, 02, 04, 05, 08
contrastive     similarity logits and the symmetric InfoNCE loss                              notebook 02
zero_shot       prompts, class embeddings, the one top-k accuracy, evaluation                 notebooks 02-03
inside_vit      the ViT traced block by block; patchify, QuickGELU, a block by hand           notebook 04
decompose       the image embedding as an exact sum of direct contributions                   notebook 05
ablation        mean-ablation of parts of that sum                                            notebook 05
pools           the description pools TextSpan chooses from                                   notebook 06
textspan        TextSpan: a head described by a few texts                                     notebook 06
heatmaps        the decomposition's spatial maps, overlays                                    notebook 07
metrics         pointing game, pixel accuracy, mIoU, average precision                        notebook 07
legrad          LeGrad from scratch                                                           notebook 08
legrad_twin     the authors' legrad-torch on our weights (test dependency)                    notebook 08's cross-check
report          timing, memory and result printing for the command-line tools                 benchmarks/
compare_maps    every heatmap method scored on toy-world masks                                notebook 08
roles_at_work   head roles used: a spurious cue removed, retrieval by one property            notebook 09
toyclip         train and evaluate the bundled ToyCLIP                                        notebook 02 (its model card)
checker         the exercise-checking engine: compare, check, assert_same                     every exercise
exercise_cases  every exercise's reference, inputs and hint, in notebook order                every exercise
checks          what notebooks import: check and assert_same, cases loaded                    every exercise
colab           the one place the repository URL lives: badge and setup cell                  every notebook's top
exercises       `make sync`: lesson pairs, student notebooks                                  (tooling)
preflight       `make run`: execute every notebook, print a table                             (tooling)
"""

__version__ = "0.1.0"

import warnings

# openai-clip 1.0.1 imports pkg_resources, which prints a deprecation warning on every first `import clip`.
# It is noise for learners (the pin setuptools<81 keeps it working), so hide that one message only.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
