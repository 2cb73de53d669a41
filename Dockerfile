# Pantheon: one image for web (gunicorn), the Celery worker and Celery beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time (base settings need no database for it) and served by
# whitenoise; var/ is the only directory the app writes to (static files, beat's schedule).
RUN useradd --create-home --uid 1000 pantheon \
    && mkdir -p /app/var/metrics \
    && DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R pantheon:pantheon /app/var
USER pantheon

EXPOSE 8000
# Worker class (gevent), workers and timeouts: gunicorn.conf.py (shared with docker-compose.yml and `make bench`).
CMD ["gunicorn", "--config", "gunicorn.conf.py", "pantheon.wsgi", "--bind", "0.0.0.0:8000"]
