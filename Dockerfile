# The production image: one image, three roles (web, worker, beat) chosen by the compose command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.base

RUN useradd --create-home --uid 1000 app
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY config ./config
COPY core ./core
COPY inventory ./inventory
COPY booking ./booking
COPY payments ./payments
COPY ticketing ./ticketing
COPY calendarsync ./calendarsync
COPY staff ./staff
RUN pip install --no-cache-dir -c requirements.lock .
COPY manage.py ./
COPY templates ./templates
COPY static ./static

# collectstatic needs settings to load, not real services: throwaway values, used for this step only.
RUN SECRET_KEY=build-only DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
    && chown -R app:app /app/.local

USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
