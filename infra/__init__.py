"""Infrastructure shared by both planes: settings, database, object storage, queue names,
webhook signing, logging. Depends on no plane."""
