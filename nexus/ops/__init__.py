"""Operations: health checks, doctor, migrations, first-run bootstrap."""
