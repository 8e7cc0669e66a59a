import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from sessions.models import ApplicationToken
from sessions.vehicles import crypto

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def test_it_round_trips_and_never_stores_plaintext(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]
    ciphertext = crypto.encrypt("access-secret")
    assert "access-secret" not in ciphertext
    assert crypto.decrypt(ciphertext) == "access-secret"


def test_it_decrypts_with_any_key_and_encrypts_with_the_first(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    old_ciphertext = crypto.encrypt("tok")
    settings.TOKEN_ENCRYPTION_KEYS = [NEW, OLD]
    assert crypto.decrypt(old_ciphertext) == "tok"
    assert not crypto.is_current(old_ciphertext)
    new_ciphertext = crypto.encrypt("tok")
    assert crypto.is_current(new_ciphertext)
    assert Fernet(NEW.encode()).decrypt(new_ciphertext.encode()) == b"tok"


def test_it_rotates_under_the_newest_key(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    old_ciphertext = crypto.encrypt("tok")
    settings.TOKEN_ENCRYPTION_KEYS = [NEW, OLD]
    rotated = crypto.rotate(old_ciphertext)
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]  # old key retired
    assert crypto.decrypt(rotated) == "tok"
    with pytest.raises(crypto.TokenDecryptionError):
        crypto.decrypt(old_ciphertext)


def test_it_refuses_tampered_or_foreign_ciphertext(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(crypto.TokenDecryptionError):
        crypto.decrypt("not-a-fernet-token")
    with pytest.raises(crypto.TokenDecryptionError):
        crypto.rotate(Fernet(OLD.encode()).encrypt(b"x").decode())


@pytest.mark.django_db
def test_the_command_rotates_the_application_tokens(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD]
    first = ApplicationToken(client_id="first")
    first.token = "t1"
    first.save()
    empty = ApplicationToken.objects.create(client_id="empty")  # never renewed: no token
    settings.TOKEN_ENCRYPTION_KEYS = [NEW, OLD]
    already = ApplicationToken(client_id="already")
    already.token = "t2"
    already.save()
    current = already.token_ciphertext

    call_command("rotate_token_keys")

    settings.TOKEN_ENCRYPTION_KEYS = [NEW]
    first.refresh_from_db()
    already.refresh_from_db()
    empty.refresh_from_db()
    assert (first.token, already.token) == ("t1", "t2")
    assert already.token_ciphertext == current  # already under the newest key: left alone
    assert empty.token_ciphertext == ""
