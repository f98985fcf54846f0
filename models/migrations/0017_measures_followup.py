from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0015_measures')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Document',
            name='clinical',
            field=fields.BooleanField(default=False),
        ),
        # The PDFs of forms submitted before the flag existed hold the client's answers.
        ops.RunSQL(
            "UPDATE document SET clinical = TRUE WHERE id IN "
            "(SELECT document_id FROM form_assignment WHERE document_id IS NOT NULL)",
            reverse_sql="SELECT 1",
        ),
    ]
