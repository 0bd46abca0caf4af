"""The fine-tuner, `accelerate launch -m rephraser.train` (issue #3: not built yet); it reads `rephraser.data.TokenFile`."""
