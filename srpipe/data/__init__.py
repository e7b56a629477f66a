"""Data: the dataset catalog and downloader, image loading, the embedded sample set and the patch store."""
