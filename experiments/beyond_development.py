"""The development table of `beyond_mass_segmentation.py`: what earlier recipe settings gave."""

# What earlier settings gave on the same phantom split (seed 0, default mode), measured while
# building the recipe; kept so the report says what each ingredient was worth.
DEVELOPMENT = [
    "## Development runs on the phantom (same split, seed 0)",
    "",
    "| settings | test Dice/img | empty rate | sens. at 1 FP/img | note |",
    "|---|---|---|---|---|",
    "| per-patch Dice + BCE, stopped early at epoch 8 (12 min) | 0.063 | 0.05 | 0.15 | "
    "floods ~30 000 working pixels of every normal breast: a lesion-free patch's smoothed "
    "Dice saturates and stops penalising false positives |",
    "| batch Dice + BCE, 16 epochs (15.7 min) | 0.227 | 0.26 | 0.40 | val Dice still rising "
    "slowly at the end |",
    "| batch Dice + BCE, depth-4 UNet, 24 epochs (13.9 min) | 0.195 | 0.21 | 0.35 | val "
    "0.330; by mass radius: small 0.00, medium 0.23, large 0.18 — even training images reach "
    "only 0.31: the model underfits, large masses are found only in part |",
    "| 1024 → 256, 128² patches, half of them on a mass, zoom 0.8-1.25, batch 12 (early stop "
    "at epoch 24, 10.8 min) | 0.123 | 0.21 | 0.20 | val 0.265: a coarser grid loses the small "
    "masses |",
    "| depth-5 UNet, zoom 0.75-1.33, 30 epochs (the training default; first run, 20.6 min) | "
    "0.331 | 0.00 | 0.65 | val 0.373 (chosen on it) |",
    "| the same default again, seed 0 (18.5 min; validation chose threshold 0.65 and only the "
    "best region) | 0.134 | 0.11 | 0.30 | val 0.312, final training loss 0.73 instead of "
    "0.65: same settings and seed as the 0.331 run, different from the first epoch (loss "
    "1.182 vs 1.174; TensorFlow's CPU kernels are not bit-reproducible by default), so one "
    "run tells little |",
    "| the default with seed 1 (30 epochs, 32.6 min on a CPU shared with another run; validation "
    "chose threshold 0.2 and the 2 best regions) | 0.265 | 0.00 | 0.38 | val 0.393; over the "
    "three runs of the default: test Dice/image 0.24 on average (0.13-0.33) |",
    "| the same with 40 epochs (early stop at 37, 23 min) | 0.176 | 0.16 | 0.35 | val 0.294: "
    "runs of one recipe differ by as much as the recipes do |",
    "| the default model, mask = only its best-scored candidate (threshold 0.1) | 0.361 | — | "
    "— | val 0.396 (so now a choice made on validation: `mask_regions`); choosing by hand the "
    "component that overlaps the truth best gives only "
    "0.405 (val 0.416): the masks themselves limit Dice, not false-positive regions — 6 of 19 "
    "test masses are missed (Dice 0; 5 of them below radius 47 px at 1024), and some found "
    "ones are drawn with up to 11x the truth's area at the low threshold |",
    "| the default model, each region cut at half its own peak probability (against the "
    "over-drawn masses) | 0.315 | — | — | val 0.413 but test lower than without: not "
    "adopted |",
    "| base filters 24 instead of 16 (the 24-min budget stopped it at epoch 24 of 30) | "
    "0.164 | 0.16 | 0.35 | val 0.297: a wider network does not fit better in the budget |",
    "| 512 working size, 192² patches | — | — | — | stopped: 107-128 s an epoch on a shared "
    "CPU, so the 24-min budget allows ~13 epochs |",
    "| half of the patches centred on a mass (no time budget; 38.6 min on a CPU shared with "
    "the next run) | 0.234 | 0.05 | 0.45 | val 0.337 |",
    "| 128² patches, half of them on a mass, 45 epochs (no time budget; 41 min, shared CPU) | "
    "0.334 | 0.00 | 0.55 | val 0.366: more, smaller patches do not beat the default |",
    "| the default model, inference also at 0.8× and 1.25× and averaged | 0.334 | — | — | val "
    "0.330 instead of 0.373: not adopted |",
    "| the default model, by mass contrast (val + test, 41 masses) | — | — | — | every mass "
    "of contrast ≥ 1.56 is found (Dice 0.46-0.51 on them); below 0.75 half are missed "
    "(Dice 0.24); all 12 missed masses are faint (contrast < 1.2), and 11 of them small "
    "(r < 47 px at 1024) |",
]

# The techniques of #17 measured in 5 patient folds of mias-dev (110 images, 21 masses), one
# training run each, at commit adf5656: docs/results/recipe_folds_miasdev.md has the commands.
FOLD_DEVELOPMENT = [
    "## Development runs in 5 folds of mias-dev (not this run: seed 0 at commit adf5656, seed 1 "
    "with #17's final code, one training run per row and seed; pooled test figures, 95 % "
    "bootstrap intervals over patients; docs/results/recipe_folds_miasdev.md)",
    "",
    "| settings | seed | Dice/img | empty rate | sens. at 1 FP/img | FROC mean | paired difference "
    "from training from scratch |",
    "|---|---|---|---|---|---|---|",
    "| from scratch (`--pretrain none --no-fp-reduction`) | 0 | 0.277 [0.138, 0.433] | "
    "0.40 [0.20, 0.64] | 0.43 [0.17, 0.64] | 0.460 [0.298, 0.622] | — |",
    "| from scratch | 1 | 0.160 [0.066, 0.267] | 0.00 [0.00, 0.00] | 0.19 [0.05, 0.36] | "
    "0.167 [0.038, 0.319] | — |",
    "| + FP reduction (`--pretrain none`) | 0 | same masks | same masks | 0.43 [0.21, 0.73] | "
    "0.500 [0.323, 0.667] | FROC mean +0.040 [−0.056, 0.135]: undecided |",
    "| + FP reduction | 1 | same masks | same masks | 0.19 [0.05, 0.36] | 0.175 [0.042, 0.333] "
    "| FROC mean +0.008 [−0.040, 0.061]: undecided |",
    "| phantom pre-training (`--no-fp-reduction`) | 0 | 0.339 [0.184, 0.483] | "
    "0.20 [0.05, 0.39] | 0.48 [0.25, 0.69] | 0.532 [0.373, 0.686] | empty −0.20 [−0.40, −0.05]; "
    "FROC mean +0.071 [−0.008, 0.177]: undecided |",
    "| phantom pre-training | 1 | 0.277 [0.135, 0.424] | 0.30 [0.08, 0.52] | 0.29 [0.08, 0.46] "
    "| 0.246 [0.107, 0.407] | empty +0.30 [0.08, 0.52]; FROC mean +0.079 [−0.107, 0.271]: "
    "undecided |",
    "| **pre-training + FP reduction (the default)** | 0 | same masks | same masks | "
    "0.62 [0.38, 0.86] | 0.571 [0.397, 0.762] | FROC mean +0.111 [0.022, 0.250]: better |",
    "| **pre-training + FP reduction (the default)** | 1 | same masks | same masks | "
    "0.29 [0.11, 0.46] | 0.262 [0.115, 0.417] | FROC mean +0.095 [−0.108, 0.310]: same "
    "direction (the rule written before for keeping it as the default) |",
    "| MobileNetV2 encoder without weights (`--set encoder=mobilenetv2`; 4-6 epochs a fold) | 0 "
    "| 0.094 [0.047, 0.146] | 0.00 [0.00, 0.00] | 0.05 [0.00, 0.14] | 0.040 [0.000, 0.119] | "
    "FROC mean −0.421 [−0.611, −0.222]: worse |",
    "| fixed threshold 0.3 instead of the validation-chosen one (a hypothesis from seed 0's "
    "test figures) | 1 | 0.168 and 0.240 (from scratch, default) | 0.00 and 0.20 | same "
    "candidates | same | Dice +0.008 and −0.037, empty 0.00 and −0.10 against the chosen "
    "thresholds: not confirmed |",
]
