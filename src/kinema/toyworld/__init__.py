"""The toy world: procedural moving-shape videos with ground truth, and the adherence judge."""
