"""Benchmarks of the five-step loop: cases and byte models (:mod:`.cases`), timing and the
streaming roofline (:mod:`.timing`), machine_info and the allocator (:mod:`.machine`), and result
files (:mod:`.results`)."""
