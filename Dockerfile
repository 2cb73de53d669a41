FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 1000 pantheon \
    && mkdir -p /app/var \
    && DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R pantheon:pantheon /app/var
USER pantheon

EXPOSE 8000
CMD ["gunicorn", "pantheon.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "180"]
