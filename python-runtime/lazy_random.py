"""`random`'s shared generator, seeded from the host's entropy by the first draw of each job.

The snapshot freezes one Mersenne Twister state, so something must reseed it in every instance
or every job would draw the same numbers. componentize-py calls `random.seed()` before an
instance's first export call, and the runtime used to call it again at the start of each job:
about 93,000 fuel each (the state's 1,871-step set-up, run in WebAssembly), together two fifths
of a trivial job, although most jobs never draw a random number.

So the module's generator (`random._inst`, behind `random.random`, `random.choice` and every
other module-level function) becomes a `JobRandom`: `seed()` without a value only marks it
unseeded, and each method that reads the state seeds it from `os.urandom` first if it is
unseeded. A job's numbers come from the same entropy as before, drawn when first needed; a job
that seeds it with a value gets that value's sequence. The flag lives in linear memory, so
every job starts from the snapshot's "unseeded".

`install()` runs at build time and fails the build if anything outside `random` still holds a
method of the old generator: that would be a source of numbers every job repeats.
Tested by `every_way_into_random_draws_anew_in_each_job` (crates/sandbox/tests/runtime.rs).
"""

import _random
import gc
import random
import types


class JobRandom(random.Random):
    """`random.Random`, seeded on first use instead of at construction."""

    _seeded = False

    def _seed_now(self):
        self._seeded = True
        _random.Random.seed(self)  # the C seeding, from os.urandom; leaves gauss_next alone

    # The C methods that read or expose the state: every other method goes through these.
    def random(self):
        if not self._seeded:
            self._seed_now()
        return super().random()

    def getrandbits(self, k):
        if not self._seeded:
            self._seed_now()
        return super().getrandbits(k)

    def getstate(self):
        if not self._seeded:
            self._seed_now()
        return super().getstate()

    # The methods that set the state. `seed()` without a value means "from entropy", which
    # the first draw will do; componentize-py calls it before every instance's first export
    # (a build-time seed must not survive), so deferring it matters on every job.
    def seed(self, a=None, version=2):
        if a is None:
            self._seeded = False
            self.gauss_next = None
            return
        super().seed(a, version)
        self._seeded = True  # only once it took: a seed that raises leaves the flag alone

    def setstate(self, state):
        super().setstate(state)
        self._seeded = True


def _rebind(old, new):
    """Points `random`'s module-level functions at `new`."""
    for name, value in list(vars(random).items()):
        # Python methods (`random.choice`) and C ones (`random.random`) alike.
        if getattr(value, "__self__", None) is old:
            setattr(random, name, getattr(new, value.__name__))
    random._inst = new


def install():
    """Makes a `JobRandom` the module's generator. Construction calls `seed()` without a
    value, so it starts unseeded, and so does every job."""
    old = random._inst
    _rebind(old, JobRandom())
    gc.collect()
    holders = [r for r in gc.get_referrers(old) if not isinstance(r, types.FrameType)]
    if holders:
        raise RuntimeError(
            f"lazy_random: {len(holders)} objects still hold the build-time generator: {holders[:5]!r}"
        )
