"""Word-spectrogram nets (Harwath & Glass 2015, Sec. 2.2): pretraining, Table 2, word vectors."""
