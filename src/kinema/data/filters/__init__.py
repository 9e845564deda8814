"""Per-clip measurements that the stage thresholds filter on: quality, motion, text, watermark, borders."""
