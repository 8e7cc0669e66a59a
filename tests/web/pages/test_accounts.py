"""Sign up, log in, log out, password reset (the email goes to the console backend in development)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "charge-me-up-42"


def test_it_signs_a_driver_up_and_logs_them_in(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "rita", "email": "rita@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/vehicles/"
    user = get_user_model().objects.get(username="rita")
    assert user.email == "rita@example.com"
    assert client.get("/vehicles/").status_code == 200  # logged in


def test_it_refuses_a_second_account_for_one_email_and_says_what_to_do(client, driver):
    response = client.post(
        "/accounts/signup/",
        {"username": "again", "email": "DRIVER@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 200
    assert "Log in or reset your password" in response.content.decode()
    assert not get_user_model().objects.filter(username="again").exists()


def test_it_shows_password_mismatch_next_to_the_field(client):
    response = client.post(
        "/accounts/signup/", {"username": "x", "email": "x@example.com", "password1": PASSWORD, "password2": "other"}
    )
    assert response.status_code == 200
    assert 'class="field-error" role="alert"' in response.content.decode()


def test_signup_needs_the_csrf_token():
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        "/accounts/signup/",
        {"username": "rita", "email": "rita@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 403


def test_a_wrong_password_points_to_the_reset(client, driver):
    response = client.post("/accounts/login/", {"username": "driver", "password": "nope"})
    assert response.status_code == 200
    assert "reset your password" in response.content.decode()


def test_log_out_is_a_post_and_ends_the_session(client, driver):
    client.force_login(driver)
    assert client.get("/accounts/logout/").status_code == 405  # a link cannot log anyone out
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/vehicles/").status_code == 302


def test_a_driver_resets_a_forgotten_password_by_email(client, driver, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = client.post("/accounts/password_reset/", {"email": "driver@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your Prepaid Charge password"
    link = re.search(r"http://testserver(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "a-new-secret-77", "new_password2": "a-new-secret-77"}
    )
    assert done.status_code == 302
    driver.refresh_from_db()
    assert driver.check_password("a-new-secret-77")


def test_a_used_reset_link_says_to_ask_for_a_new_one(client):
    response = client.get("/accounts/reset/MQ/bad-token/")
    assert b"Ask for a new one" in response.content
