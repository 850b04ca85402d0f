"""Labels the report attaches to results, shared by the JSON and the HTML."""

PRIVATE_NOTICE = "computed on private data: not differentially private"
TRAINING_DATA_NOTICE = "tested on training data"
