"""Constraints on samples: the language (``language``), bound to a schema (``space``,
``atoms``), projections (``projection``) and the feasibility check (``feasibility``). Sampling
under constraints is :mod:`trustgen.sampling.constrained`."""
