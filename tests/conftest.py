import pytest


@pytest.fixture
def driver(django_user_model):
    return django_user_model.objects.create_user("driver", "driver@example.com", "drive-safely-42")


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("operator", "ops@example.com", "operate-safely-42", is_staff=True)
