"""The convolution arithmetic, without torch: the shape plan by the textbook formulas (`geometry`),
the printed table (`table`), and the pictures (`scene` says what is drawn, `render` draws it,
`draw` writes them for a network)."""
