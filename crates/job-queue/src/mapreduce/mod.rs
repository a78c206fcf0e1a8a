//! Map-shuffle-reduce on the cluster (see docs/mapreduce.md).
