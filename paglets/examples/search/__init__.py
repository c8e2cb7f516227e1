"""grep and find over the files of every host of the mesh (``paglets search grep|find``)."""
