"""The foundations every package uses: errors, configuration, the one clock and business time,
the vocabulary and the catalogue of figures, Russian labels and formatting, retry, phone masking."""
