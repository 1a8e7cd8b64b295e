"""quanta.render — what sits above the media: tables for terminals and benchmarks, and the demo
that measures every registered medium."""
