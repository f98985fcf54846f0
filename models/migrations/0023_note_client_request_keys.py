from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0022_invoice_snapshot')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Client',
            name='request_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='NoteAddendum',
            name='request_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
