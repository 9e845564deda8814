"""Video curation: probing, shot splitting, measurements, filters, staging and the dataset manifest."""
