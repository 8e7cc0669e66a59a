"""Everything a person or a client uses: the driver pages, the REST API and the operator
dashboard, over the domain apps (payments → sessions → prepaid). Web may import every app; no app
imports web."""
