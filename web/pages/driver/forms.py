from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_lazy as _

from notifications.kinds import OPTIONAL
from prepaid import timezones


class SignUpForm(UserCreationForm):
    """A username, an email (for receipts and password resets) and a password."""

    email = forms.EmailField(required=True, help_text=_("For receipts and to reset your password."))

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("An account with this email exists already. Log in or reset your password."))
        return email


class EmailPreferencesForm(forms.Form):
    """The optional emails (notifications.kinds.OPTIONAL), each on or off. Emails that tell the
    driver something went wrong are always sent and not offered here."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in OPTIONAL:
            self.fields[kind.name] = forms.BooleanField(required=False, label=kind.label, help_text=kind.help)


class TimeZoneForm(forms.Form):
    """The time zone the driver reads times in (pages, emails, the "ready by" deadline)."""

    time_zone = forms.ChoiceField(label=gettext_lazy("Time zone"), choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(name, name.replace("_", " ")) for name in timezones.all_time_zones()]
        self.fields["time_zone"].error_messages["invalid_choice"] = gettext_lazy("Choose a time zone from the list.")
