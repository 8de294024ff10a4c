"""Process lineage: the cache over the kernel's pinned map, process snapshots, the /proc scan."""
