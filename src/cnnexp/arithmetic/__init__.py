"""The convolution arithmetic, without torch, in 1, 2 or 3 spatial dimensions: the shape plan by the textbook formulas (`geometry`),
the printed table (`table`), and the pictures (`scene` says what is drawn; `canvas` and `panels`
are what it is drawn with; `animation`, `sheet`, `channel_groups`, `receptive_field` draw each
picture; `draw` writes them for a network)."""
