"""The data layer, one concern a module (README, "Layout"): `data_specs` (what orchestration hands it), `batch`
(the batch keys), `rows/` (reading a split's rows), `sources/` (examples as streams), `encoding/` (examples to
cache records, the build), `cache/` (the cache on disk), `loader` (batches for training), `corpus` (the
bundled offline corpus), `build_progress` (what long jobs report to)."""
