from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0020_payment_request_key')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Document',
            name='request_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='MeasureAdministration',
            name='request_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
