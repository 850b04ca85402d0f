"""Sampling: the Sampler and its hook points."""

from trustgen.sampling.sampler import NoiseHook, OutputHook, SampleBatch, Sampler

__all__ = ["Sampler", "SampleBatch", "NoiseHook", "OutputHook"]
