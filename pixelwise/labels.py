"""Label conventions every layer shares."""

IGNORE_INDEX = 255   # the label of pixels that neither the losses nor the metrics count (masks are uint8/int64)
