"""Bounds on every size a user or a received file can ask for, checked before any work.

Beyond them a command would not finish (10^9 steps is years on a CPU), would allocate more
memory than any machine has, or a value would overflow where it is used (the seed becomes
``seed + 7919 * rank`` in an int64). A leaf: imports nothing, so the CLI's parser can use it
without importing torch.
"""

MAX_STEPS = 10**9
MAX_EPOCHS = 10**6
MAX_BATCH_SIZE = 10**7
MAX_SEED = 2**62
MAX_LR = 10.0
MAX_CANARIES = 10**6  # white-box canaries per run (each is a gradient-sized vector in memory)
MAX_SAMPLER_STEPS = 100_000  # DDIM steps: more than the largest allowed timesteps visit each one once
