"""ASR → text cascade (MILAN's comparison): pocketsphinx transcribes every spoken caption with its
bundled general LM or an n-gram LM of the training captions; hypotheses go through the text row's
word vectors and fragment model (by file: hypotheses.tsv), WER per split beside the recall rows."""
