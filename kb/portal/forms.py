from django import forms


class AskForm(forms.Form):
    question = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Ask about your documents…"}),
    )


class UploadForm(forms.Form):
    file = forms.FileField(label="Document (PDF, DOCX, Markdown or text)")
